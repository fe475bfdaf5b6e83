// SPDX-License-Identifier: Apache-2.0
//
// The probed process of uprobe_scope.c: waits for a byte on stdin (the loader
// attaches meanwhile), then calls hit() n times and prints ns per call.
//   target run <n>    calls hit() n times
//   target fork <n>   forks after the go byte; parent and child each call n times,
//                     the parent reports the child's exit status (fork errors too)
//   target sleep      waits for a second byte, calls nothing
// UPEXP_FIXED: maps this file's path at kFixed, the address the loader gives the
// kernel as the uprobe path (see uprobe_scope.c for why).
// UPEXP_EXEC: the forked child execs a shell that forks twice.
// Built with -O0 -fcf-protection=none so hit() starts with `push %rbp`, an
// instruction the kernel emulates (bench/README.md, "TLS").
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define kFixed ((void *)0x5a5a00000000)

__attribute__((noinline)) int hit(int x) { return x + 1; }

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
  char c;
  long n = argc > 2 ? atol(argv[2]) : 0;
  if (argc < 2) return 2;
  if (getenv("UPEXP_FIXED")) {
    char *p = mmap(kFixed, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED) return perror("mmap"), 1;
    snprintf(p, 4096, "%s", argv[0]);
  }
  if (read(0, &c, 1) != 1) return 1;
  if (!strcmp(argv[1], "sleep")) return read(0, &c, 1) == 1 ? 0 : 1;
  int forked = !strcmp(argv[1], "fork");
  pid_t child = forked ? fork() : -1;
  if (forked && child < 0) printf("pid %d: fork failed: %s\n", getpid(), strerror(errno));
  volatile int s = 0;
  double t0 = now_ns();
  for (long i = 0; i < n; i++) s = hit(s);
  double t1 = now_ns();
  if (child == 0 && getenv("UPEXP_EXEC")) {
    fflush(stdout);
    execl("/bin/sh", "sh", "-c", "/bin/true && /bin/true && echo exec-child-forked-ok",
          (char *)0);
  }
  printf("pid %d%s: %ld calls, %.1f ns/call\n", getpid(), child == 0 ? " (child)" : "", n,
         (t1 - t0) / (n ? n : 1));
  if (child > 0) {
    int st = 0;
    waitpid(child, &st, 0);
    printf("child %d exit status %d\n", child, WEXITSTATUS(st));
  }
  return 0;
}
