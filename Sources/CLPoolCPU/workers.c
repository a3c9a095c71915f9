/* The CPU backend's worker threads (clpool_parallel): created at first use, they spin for a while
 * after each job before they sleep, because waking a sleeping thread costs tens of microseconds
 * (more in a virtual machine), as much as a batch-1 product takes. OpenBLAS and OpenMP runtimes
 * keep their threads spinning for the same reason.
 *
 * A job is `tasks` calls of body(context, task). Tasks are handed out by one 64-bit ticket: the
 * job's generation in the high half, the tasks not yet taken in the low half, taken by
 * compare-and-swap. A worker reads the job only after its swap succeeded, and a spent ticket
 * (nothing left) can never be taken, so a worker that wakes late for a finished job takes nothing
 * from the next one. The caller takes tickets too and waits only for tasks already taken; a job
 * therefore completes even when no worker is awake (or alive: after fork, or when threads cannot
 * be created). A task must not fork. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "clpool_cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

enum { MAX_WORKERS = 255, DEFAULT_SPIN_MICROSECONDS = 1000, MAX_SPIN_MICROSECONDS = 1000000 };

static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;

static _Atomic uint64_t ticket;    /* generation << 32 | tasks not yet taken */
static _Atomic(clpool_task_fn) job_body;
static _Atomic(void *) job_context;
static _Atomic size_t job_tasks;
static _Atomic size_t job_done;    /* tasks of the current job finished */
static _Atomic int sleepers;       /* workers waiting on `wake` */
static int workers;                /* started; guarded by submit_lock */
static long spin_nanoseconds = -1; /* guarded by submit_lock */

static uint32_t generation_of(uint64_t value) { return (uint32_t)(value >> 32); }

static long long monotonic_nanoseconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

/* Runs tasks of generation `generation` while any are left. The job's fields are read after a
 * successful swap, which synchronises with the store that published them; until this task is
 * done, the job cannot end and they cannot change. */
static void take_tasks(uint32_t generation) {
  uint64_t current = atomic_load(&ticket);
  for (;;) {
    uint32_t remaining = (uint32_t)current;
    if (generation_of(current) != generation || remaining == 0) return;
    if (!atomic_compare_exchange_weak(&ticket, &current, current - 1)) continue;
    size_t task = atomic_load_explicit(&job_tasks, memory_order_relaxed) - remaining;
    atomic_load_explicit(&job_body, memory_order_relaxed)(atomic_load_explicit(&job_context, memory_order_relaxed), task);
    atomic_fetch_add_explicit(&job_done, 1, memory_order_release);
    current = atomic_load(&ticket);
  }
}

static void *worker_main(void *spin_argument) {
  long long spin = *(long *)spin_argument;
  uint32_t seen = generation_of(atomic_load(&ticket));
  for (;;) {
    long long deadline = monotonic_nanoseconds() + spin;
    uint32_t generation = generation_of(atomic_load(&ticket));
    for (unsigned round = 0; spin > 0; ++round) {
      generation = generation_of(atomic_load(&ticket));
      if (generation != seen) break;
      for (int i = 0; i < 32; ++i) CPU_RELAX();
      if (round % 64 == 63) {
        if (monotonic_nanoseconds() >= deadline) break;
        sched_yield(); /* a spinning worker lends its core to the process's other threads */
      }
    }
    if (generation == seen) {
      pthread_mutex_lock(&sleep_lock);
      atomic_fetch_add(&sleepers, 1);
      while ((generation = generation_of(atomic_load(&ticket))) == seen) pthread_cond_wait(&wake, &sleep_lock);
      atomic_fetch_sub(&sleepers, 1);
      pthread_mutex_unlock(&sleep_lock);
    }
    seen = generation;
    take_tasks(generation);
  }
  return NULL;
}

/* In the child of a fork only the forking thread exists: new workers start at its first job. */
static void forget_workers(void) {
  pthread_mutex_init(&submit_lock, NULL);
  pthread_mutex_init(&sleep_lock, NULL);
  pthread_cond_init(&wake, NULL);
  atomic_store(&sleepers, 0);
  workers = 0;
}

static void start_workers(size_t wanted) {
  static int registered;
  if (!registered) {
    registered = 1;
    pthread_atfork(NULL, NULL, forget_workers);
  }
  if (spin_nanoseconds < 0) {
    const char *text = getenv("CLPOOL_SPIN_US");
    long microseconds = text ? strtol(text, NULL, 10) : DEFAULT_SPIN_MICROSECONDS;
    if (microseconds < 0) microseconds = 0;
    if (microseconds > MAX_SPIN_MICROSECONDS) microseconds = MAX_SPIN_MICROSECONDS;
    spin_nanoseconds = microseconds * 1000L;
  }
  if (wanted > MAX_WORKERS) wanted = MAX_WORKERS;
  while ((size_t)workers < wanted) {
    pthread_t thread;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    int failed = pthread_create(&thread, &attributes, worker_main, &spin_nanoseconds);
    pthread_attr_destroy(&attributes);
    if (failed) return; /* the jobs run on the threads there are */
    ++workers;
  }
}

void clpool_parallel(size_t tasks, size_t threads, clpool_task_fn body, void *context) {
  if (tasks == 0) return;
  /* One task, one thread, more tasks than a ticket counts, or a job already running (another
   * caller, or a task that runs a job of its own): the tasks run here, in order. */
  if (tasks == 1 || threads <= 1 || tasks > UINT32_MAX || pthread_mutex_trylock(&submit_lock) != 0) {
    for (size_t task = 0; task < tasks; ++task) body(context, task);
    return;
  }
  start_workers(threads - 1);
  atomic_store_explicit(&job_body, body, memory_order_relaxed);
  atomic_store_explicit(&job_context, context, memory_order_relaxed);
  atomic_store_explicit(&job_tasks, tasks, memory_order_relaxed);
  atomic_store_explicit(&job_done, 0, memory_order_relaxed);
  uint32_t generation = generation_of(atomic_load(&ticket)) + 1;
  atomic_store(&ticket, (uint64_t)generation << 32 | tasks); /* publishes the job (sequentially consistent) */
  if (atomic_load(&sleepers) > 0) {
    pthread_mutex_lock(&sleep_lock);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&sleep_lock);
  }
  take_tasks(generation);
  for (unsigned round = 1; atomic_load_explicit(&job_done, memory_order_acquire) < tasks; ++round) {
    CPU_RELAX();
    if (round % 4096 == 0) sched_yield(); /* a worker holding a task may be waiting for this core */
  }
  pthread_mutex_unlock(&submit_lock);
}
