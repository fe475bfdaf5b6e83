// SPDX-License-Identifier: Apache-2.0
//
// Can a uprobe be scoped to one process and its future children? Opens the
// uprobe perf event itself (perf_event_open(2) with the "uprobe" PMU:
// attr.type from /sys/bus/event_source/devices/uprobe/type, config1 = path
// pointer, config2 = file offset; https://man7.org/linux/man-pages/man2/perf_event_open.2.html)
// for one pid with attr.inherit = 1, attaches count.bpf.c's program with
// bpf_program__attach_perf_event (UPEXP_IOCTL: PERF_EVENT_IOC_SET_BPF), and
// reads which tgids ran it and the program's run_cnt (BPF_STATS_RUN_TIME).
//
//   uprobe_scope <target> <offset> scope
//       attach to a `target fork` process before it forks; an unrelated
//       `target run` calls the same function
//   uprobe_scope <target> <offset> cost <k> <calls> none|system|perpid
//       ns per hit() call of one process with no probe, a system-wide probe, or
//       one per-pid probe for it plus k-1 for sleeping processes (each per-pid
//       perf event is its own uprobe consumer)
// UPEXP_FIXED: config1 points at a page mapped at the same address in this
// process and in the target (the kernel re-reads config1 when a child inherits
// the event, in the forking process's memory). UPEXP_RMEXEC: attr.remove_on_exec.
// Run through run.sh.
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define kFixed ((void *)0x5a5a00000000)

static const char *target;
static unsigned long long offset;
static struct bpf_program *prog;
static int hits_fd;

static int uprobe_pmu_type(void) {
  FILE *f = fopen("/sys/bus/event_source/devices/uprobe/type", "r");
  int t = -1;
  if (f) {
    if (fscanf(f, "%d", &t) != 1) t = -1;
    fclose(f);
  }
  return t;
}

// A per-pid uprobe event on target+offset, inherited by the pid's later children.
static int open_uprobe(int pid) {
  static char *fixed;
  struct perf_event_attr a;
  memset(&a, 0, sizeof(a));
  a.size = sizeof(a);
  a.type = uprobe_pmu_type();
  if (getenv("UPEXP_FIXED") && !fixed) {
    fixed = mmap(kFixed, 4096, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (fixed == MAP_FAILED) perror("mmap"), exit(1);
    snprintf(fixed, 4096, "%s", target);
  }
  a.config1 = (uint64_t)(uintptr_t)(fixed ? fixed : target);
  a.config2 = offset;
  a.inherit = 1;
  a.remove_on_exec = getenv("UPEXP_RMEXEC") != NULL;
  int fd = syscall(__NR_perf_event_open, &a, pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) perror("perf_event_open"), exit(1);
  return fd;
}

static void attach_fd(int fd) {
  if (getenv("UPEXP_IOCTL")) {
    if (ioctl(fd, PERF_EVENT_IOC_SET_BPF, bpf_program__fd(prog))) perror("SET_BPF"), exit(1);
  } else if (!bpf_program__attach_perf_event(prog, fd)) {
    perror("bpf_program__attach_perf_event"), exit(1);
  }
}

struct proc {
  pid_t pid;
  int go;  // write end of the target's stdin
};

static struct proc spawn(const char *mode, long n, int quiet) {
  int p[2];
  if (pipe(p)) exit(1);
  pid_t pid = fork();
  if (pid == 0) {
    char nb[32];
    dup2(p[0], 0);
    close(p[1]);
    if (quiet) dup2(open("/dev/null", O_WRONLY), 1);
    snprintf(nb, sizeof nb, "%ld", n);
    execl(target, target, mode, nb, (char *)0);
    _exit(127);
  }
  close(p[0]);
  return (struct proc){pid, p[1]};
}

static void go(struct proc p) {
  if (write(p.go, "g", 1) != 1) exit(1);
}

static struct bpf_prog_info prog_info(void) {
  struct bpf_prog_info info;
  unsigned len = sizeof(info);
  memset(&info, 0, len);
  bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len);
  return info;
}

int main(int argc, char **argv) {
  if (argc < 4) return fprintf(stderr, "usage: see the head of uprobe_scope.c\n"), 2;
  target = argv[1];
  offset = strtoull(argv[2], 0, 0);
  struct bpf_object *obj = bpf_object__open_file(getenv("UPEXP_BPF_OBJ"), NULL);
  if (!obj || bpf_object__load(obj)) return fprintf(stderr, "loading the BPF object\n"), 1;
  prog = bpf_object__find_program_by_name(obj, "count_hit");
  hits_fd = bpf_map__fd(bpf_object__find_map_by_name(obj, "hits"));
  if (bpf_enable_stats(BPF_STATS_RUN_TIME) < 0) perror("bpf_enable_stats");
  fflush(stdout);

  if (!strcmp(argv[3], "scope")) {
    struct proc a = spawn("fork", 1000, 0), b = spawn("run", 1000, 0);
    attach_fd(open_uprobe(a.pid));
    go(a);
    go(b);
    waitpid(a.pid, 0, 0);
    waitpid(b.pid, 0, 0);
    printf("attached to pid %d (forks after the attach); unrelated pid %d\n", a.pid, b.pid);
    printf("run_cnt %llu; runs per tgid:", (unsigned long long)prog_info().run_cnt);
    uint32_t key = 0, next;
    uint64_t v;
    for (int first = 1; bpf_map_get_next_key(hits_fd, first ? NULL : &key, &next) == 0;
         first = 0, key = next) {
      bpf_map_lookup_elem(hits_fd, &next, &v);
      printf(" %u=%llu", next, (unsigned long long)v);
    }
    printf("\n");
    return 0;
  }

  if (argc < 7) return 2;
  int k = atoi(argv[4]);
  long n = atol(argv[5]);
  const char *how = argv[6];
  struct proc sleepers[1024];
  int ns = 0;
  struct proc m = spawn("run", n, 0);
  if (!strcmp(how, "system")) {
    LIBBPF_OPTS(bpf_uprobe_opts, o);
    if (!bpf_program__attach_uprobe_opts(prog, -1, target, offset, &o)) perror("attach"), exit(1);
  } else if (!strcmp(how, "perpid")) {
    for (; ns < k - 1 && ns < 1024; ns++) {
      sleepers[ns] = spawn("sleep", 0, 1);
      attach_fd(open_uprobe(sleepers[ns].pid));
    }
    attach_fd(open_uprobe(m.pid));
  }
  go(m);
  waitpid(m.pid, 0, 0);
  for (int i = 0; i < ns; i++) {
    go(sleepers[i]);
    go(sleepers[i]);
    waitpid(sleepers[i].pid, 0, 0);
  }
  struct bpf_prog_info info = prog_info();
  printf("%s k=%d: run_cnt %llu, %.1f ns per program run\n", how, k,
         (unsigned long long)info.run_cnt,
         info.run_cnt ? (double)info.run_time_ns / info.run_cnt : 0.0);
  return 0;
}
