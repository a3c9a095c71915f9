/* Temporary files removed when a signal whose default action ends the process does so (SIGINT,
 * SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2, SIGXCPU). SIGQUIT replaces the Swift
 * runtime's backtracer, which prints a backtrace and lets the process run on. A signal handler may
 * make only async-signal-safe calls, so a path is copied into a slot of its own, written once and
 * never reused; the handler unlinks every live slot's path and re-raises the signal with its
 * default action, so the process still ends by it. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "clpool_cpu.h"

enum { TEMPORARY_SLOTS = 1024, TEMPORARY_PATH_BYTES = 4096 };
enum { SLOT_UNUSED, SLOT_LIVE, SLOT_DONE };

static char temporary_paths[TEMPORARY_SLOTS][TEMPORARY_PATH_BYTES];
static atomic_int temporary_states[TEMPORARY_SLOTS];
static atomic_int slots_taken;
static atomic_int handlers_installed;

static void remove_temporaries(int signal_number) {
  for (int slot = 0; slot < TEMPORARY_SLOTS; ++slot)
    if (atomic_load(&temporary_states[slot]) == SLOT_LIVE) unlink(temporary_paths[slot]);
  struct sigaction fallback;
  memset(&fallback, 0, sizeof fallback);
  fallback.sa_handler = SIG_DFL;
  sigemptyset(&fallback.sa_mask);
  sigaction(signal_number, &fallback, NULL);
  raise(signal_number); /* blocked until this handler returns, then the default action */
}

/* Also unblocks the signals it handles in the calling thread (and so in the threads it starts
 * later): a mask is inherited across exec, and a parent that spawned clpool from a thread that
 * blocks them (a test runner, a thread pool) would leave it with a handler that never runs. */
void clpool_remove_temporaries_on_signals(void) {
  const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2, SIGXCPU};
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = remove_temporaries;
  sigemptyset(&action.sa_mask);
  sigset_t handled;
  sigemptyset(&handled);
  for (size_t i = 0; i < sizeof signals / sizeof signals[0]; ++i) {
    struct sigaction current;
    if (sigaction(signals[i], NULL, &current) != 0 || current.sa_handler == SIG_IGN) continue; /* nohup */
    sigaction(signals[i], &action, NULL);
    sigaddset(&handled, signals[i]);
  }
  pthread_sigmask(SIG_UNBLOCK, &handled, NULL);
  atomic_store(&handlers_installed, 1);
}

int clpool_register_temporary(const char *path) {
  if (!atomic_load(&handlers_installed) || strlen(path) >= TEMPORARY_PATH_BYTES) return -1;
  int slot = atomic_fetch_add(&slots_taken, 1);
  if (slot >= TEMPORARY_SLOTS) return -1;
  memcpy(temporary_paths[slot], path, strlen(path) + 1);
  atomic_store(&temporary_states[slot], SLOT_LIVE);
  return slot;
}

void clpool_forget_temporary(int slot) {
  if (slot >= 0 && slot < TEMPORARY_SLOTS) atomic_store(&temporary_states[slot], SLOT_DONE);
}
