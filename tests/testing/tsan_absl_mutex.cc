// Teaches ThreadSanitizer about absl::Mutex, for `make test-tsan` only.
//
// Debian builds abseil without TSan, so the lock operations inside
// libabsl_synchronization.so are invisible to it: every access guarded by an
// absl::Mutex looked like a data race (the first TSan run reported
// CurlWorker's inbox, which is only touched under inbox_mu_). This file,
// linked into the TSan build of the tests labelled tsan, defines the
// Mutex and CondVar entry points itself; the dynamic linker binds every
// call (ours and abseil's own, e.g. from absl::Notification) to these, and
// each calls the real one (dlsym RTLD_NEXT) and tells TSan the
// happens-before edge it implies (__tsan_acquire after taking the lock,
// __tsan_release before giving it up; CondVar and Await give it up while
// they wait). Lock order and deadlocks stay abseil's to check.
//
// Never linked into fetchd or any non-TSan build.

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);

namespace {

// The real function called `mangled`, from the next object after this one.
template <typename Fn>
Fn Real(const char* mangled) {
  void* fn = dlsym(RTLD_NEXT, mangled);
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan_absl_mutex: %s not found\n", mangled);
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

using MutexFn = void (*)(absl::Mutex*);
using MutexTryFn = bool (*)(absl::Mutex*);
using CondFn = void (*)(absl::Mutex*, const absl::Condition&);
using CondTimeoutFn = bool (*)(absl::Mutex*, const absl::Condition&,
                               absl::Duration);
using CondDeadlineFn = bool (*)(absl::Mutex*, const absl::Condition&,
                                absl::Time);
using WaitFn = void (*)(absl::CondVar*, absl::Mutex*);
using WaitTimeoutFn = bool (*)(absl::CondVar*, absl::Mutex*, absl::Duration);
using WaitDeadlineFn = bool (*)(absl::CondVar*, absl::Mutex*, absl::Time);

#define FETCHD_REAL(type, name) static const type real = Real<type>(name)

// abseil evaluates a waiter's Condition with the Mutex held, in the waiting
// thread or in whichever thread is unlocking. Wrapped, the evaluation is
// bracketed by the lock's happens-before edges, so that reading the
// guarded state there is seen as the locked access it is.
struct Guarded {
  const absl::Condition* cond;
  absl::Mutex* mu;
};

bool EvalGuarded(Guarded* g) {
  __tsan_acquire(g->mu);
  const bool met = g->cond->Eval();
  // abseil may give the lock up right after (inside the library, unseen).
  __tsan_release(g->mu);
  return met;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  FETCHD_REAL(MutexFn, "_ZN4absl7debian35Mutex4LockEv");
  real(this);
  __tsan_acquire(this);
}

void Mutex::ReaderLock() {
  FETCHD_REAL(MutexFn, "_ZN4absl7debian35Mutex10ReaderLockEv");
  real(this);
  __tsan_acquire(this);
}

bool Mutex::TryLock() {
  FETCHD_REAL(MutexTryFn, "_ZN4absl7debian35Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  FETCHD_REAL(MutexTryFn, "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

void Mutex::Unlock() {
  FETCHD_REAL(MutexFn, "_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_release(this);
  real(this);
}

void Mutex::ReaderUnlock() {
  FETCHD_REAL(MutexFn, "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_release(this);
  real(this);
}

void Mutex::LockWhen(const Condition& cond) {
  FETCHD_REAL(CondFn, "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  Guarded g{&cond, this};
  real(this, Condition(&EvalGuarded, &g));
  __tsan_acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  FETCHD_REAL(CondFn,
              "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Guarded g{&cond, this};
  real(this, Condition(&EvalGuarded, &g));
  __tsan_acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  FETCHD_REAL(CondTimeoutFn,
              "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_"
              "9ConditionENS0_8DurationE");
  Guarded g{&cond, this};
  const bool met = real(this, Condition(&EvalGuarded, &g), timeout);
  __tsan_acquire(this);  // held on return either way
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  FETCHD_REAL(CondDeadlineFn,
              "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_"
              "9ConditionENS0_4TimeE");
  Guarded g{&cond, this};
  const bool met = real(this, Condition(&EvalGuarded, &g), deadline);
  __tsan_acquire(this);
  return met;
}

void Mutex::Await(const Condition& cond) {
  FETCHD_REAL(CondFn, "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  __tsan_release(this);
  Guarded g{&cond, this};
  real(this, Condition(&EvalGuarded, &g));
  __tsan_acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  FETCHD_REAL(CondTimeoutFn,
              "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_"
              "9ConditionENS0_8DurationE");
  Guarded g{&cond, this};
  __tsan_release(this);
  const bool met = real(this, Condition(&EvalGuarded, &g), timeout);
  __tsan_acquire(this);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  FETCHD_REAL(CondDeadlineFn,
              "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_"
              "9ConditionENS0_4TimeE");
  Guarded g{&cond, this};
  __tsan_release(this);
  const bool met = real(this, Condition(&EvalGuarded, &g), deadline);
  __tsan_acquire(this);
  return met;
}

void CondVar::Wait(Mutex* mu) {
  FETCHD_REAL(WaitFn, "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  FETCHD_REAL(WaitTimeoutFn,
              "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_"
              "8DurationE");
  __tsan_release(mu);
  const bool timed_out = real(this, mu, timeout);
  __tsan_acquire(mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  FETCHD_REAL(WaitDeadlineFn,
              "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_"
              "4TimeE");
  __tsan_release(mu);
  const bool timed_out = real(this, mu, deadline);
  __tsan_acquire(mu);
  return timed_out;
}

ABSL_NAMESPACE_END
}  // namespace absl
