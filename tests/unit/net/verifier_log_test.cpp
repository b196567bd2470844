// The verifier log's tail: whole lines from the end, trailing blanks dropped.
#include "agent/bpf/verifier_log.h"

#include <gtest/gtest.h>

namespace nq::bpf {
namespace {

TEST(VerifierLogTail, KeepsWholeLastLinesWithinTheLimit) {
  EXPECT_EQ(verifier_log_tail(""), "");
  EXPECT_EQ(verifier_log_tail("R1 invalid mem access\n \n"), "R1 invalid mem access");
  // Cut at a line start: the partial first line of the window is dropped.
  EXPECT_EQ(verifier_log_tail("0: r1 = r10\n1: exit\nprocessed 2 insns\n", 25),
            "processed 2 insns");
  // The buffer is a C string inside a larger array: stop at the NUL.
  const char buf[] = "last line\0stale bytes of an earlier load";
  EXPECT_EQ(verifier_log_tail(std::string_view(buf, sizeof(buf))), "last line");
}

TEST(VerifierLog, AnnotatesOnlyWhenTheLogSaysSomething) {
  VerifierLog log(64);
  const Error err = log.annotate(Error::from_errno(EACCES, "load x"));
  EXPECT_EQ(err.message().find("verifier log"), std::string::npos) << err.message();
  EXPECT_EQ(err.code(), Error::from_errno(EACCES, "").code());
}

}  // namespace
}  // namespace nq::bpf
