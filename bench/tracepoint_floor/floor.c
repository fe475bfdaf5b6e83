// SPDX-License-Identifier: Apache-2.0
//
// Loads and attaches floor.bpf.c's program, prints "attached", and keeps it
// attached until SIGTERM or SIGINT. Run through run.py.
#include <bpf/libbpf.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s floor.bpf.o\n", argv[0]);
    return 2;
  }
  struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
  if (!obj || bpf_object__load(obj)) {
    fprintf(stderr, "floor: cannot load %s\n", argv[1]);
    return 1;
  }
  struct bpf_program *prog = bpf_object__find_program_by_name(obj, "floor_sys_exit");
  struct bpf_link *link = prog ? bpf_program__attach(prog) : NULL;
  if (!link) {
    fprintf(stderr, "floor: cannot attach floor_sys_exit\n");
    return 1;
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  printf("attached\n");
  fflush(stdout);
  while (!stop) pause();
  bpf_link__destroy(link);
  bpf_object__close(obj);
  return 0;
}
