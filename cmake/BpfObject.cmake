# bpf_object(<name> <source.bpf.c> [HEADERS h...])
#
# Compiles a BPF C program with clang into <build>/ebpf/<name>.bpf.o, generates
# <name>.skel.h with `bpftool gen skeleton`, and defines the INTERFACE target
# <name>_skel that carries the include directory of the skeleton plus libbpf.
# Everything lands in the build tree; nothing generated enters the source tree.

find_program(BPF_CLANG clang REQUIRED)
find_program(BPFTOOL bpftool PATHS /usr/sbin /sbin REQUIRED)

# UAPI headers of the build host's libc (asm/types.h lives in the multiarch dir).
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
                OUTPUT_VARIABLE NQ_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE)

function(bpf_object name source)
  cmake_parse_arguments(ARG "" "" "HEADERS" ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR})
  set(obj ${out_dir}/${name}.bpf.o)
  set(skel ${out_dir}/${name}.skel.h)
  get_filename_component(src_abs ${source} ABSOLUTE)
  get_filename_component(src_dir ${src_abs} DIRECTORY)

  set(arch_flag -D__TARGET_ARCH_x86)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
    set(arch_flag -D__TARGET_ARCH_arm64)
  endif()

  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf ${arch_flag} -Wall -Werror
            -I${src_dir} -I/usr/include/${NQ_MULTIARCH}
            -c ${src_abs} -o ${obj}
    DEPENDS ${src_abs} ${ARG_HEADERS}
    COMMENT "BPF ${name}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})

  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${out_dir} ${src_dir})
  target_link_libraries(${name}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
