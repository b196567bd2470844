/* The pod sandbox's process for the test containerd: holds the pod's
 * namespaces and does nothing else. Linked statically so the image is this
 * one file. Exits on SIGTERM/SIGINT, which pid 1 of a pid namespace would
 * otherwise ignore (no default action for pid 1). */
#include <signal.h>
#include <unistd.h>

static void on_stop(int sig) {
  (void)sig;
  _exit(0);
}

int main(void) {
  signal(SIGTERM, on_stop);
  signal(SIGINT, on_stop);
  for (;;) pause();
}
