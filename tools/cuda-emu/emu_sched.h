// emu_sched.h: running a kernel launch on the CPU.
//
// Blocks run one after another (in a shuffled order). Inside a block every CUDA thread is a
// coroutine with its own small stack; only one runs at a time. A thread runs until
// it reaches a synchronisation point, then hands control back to the scheduler:
// - __syncthreads(): waits until every thread of the block waits at a barrier. If some
//   threads have already returned, or threads wait at different barriers (different source
//   lines), that is a bug in the kernel and the launch fails with a message.
// - warp collectives (shuffles, __syncwarp, __ballot_sync, wmma): each lane deposits its
//   argument; the lane that arrives last (all lanes named in the mask, minus exited ones)
//   computes every lane's result at once and wakes the others.
// The scheduler picks the waiting threads in a random order (seeded, EMU_SEED) each round, so
// a missing barrier shows up as wrong results instead of hiding behind a lucky order.
// Nothing is lost by running one thread at a time: atomics are plain read-modify-writes.
#pragma once
#include <ucontext.h>
#include <sys/mman.h>
#include <dlfcn.h>
#include <link.h>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>
#include "emu_types.h"

namespace emu {

// ---- coroutine contexts --------------------------------------------------------------------
// On x86-64 a switch saves the callee-saved registers on the old stack and swaps stack
// pointers (a few nanoseconds); elsewhere it uses ucontext (correct but slower: swapcontext
// makes a system call per switch). Define EMU_UCONTEXT to force the portable version.
#if defined(__x86_64__) && !defined(EMU_UCONTEXT)
extern "C" void emu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .weak emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");
struct Context {
    void* sp = nullptr;
};
// Prepares `c` so that the first switch to it calls entry() (which must never return).
inline void context_start(Context& c, char* stack, size_t bytes, void (*entry)()) {
    auto* top = (uint64_t*)(((uintptr_t)stack + bytes) & ~(uintptr_t)15);
    top[-1] = 0;                   // fake return address of entry(): keeps the ABI alignment
    top[-2] = (uint64_t)entry;     // where emu_switch's `ret` goes
    for (int i = 3; i <= 8; i++) top[-i] = 0;  // rbp rbx r12 r13 r14 r15
    uint32_t fp[2];
    asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(fp[0]), "=m"(fp[1]));
    std::memcpy(&top[-9], fp, 8);  // the current MXCSR and x87 control word
    c.sp = &top[-9];
}
inline void context_switch(Context& from, Context& to) { emu_switch(&from.sp, to.sp); }
#else
struct Context {
    ucontext_t uc;
};
inline void context_start(Context& c, char* stack, size_t bytes, void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = bytes;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}
inline void context_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

// ---- ThreadSanitizer (EMU_TSAN=1) ------------------------------------------------------------
// Built with -fsanitize=thread, each CUDA thread is a TSan "fiber", and the emulator tells TSan
// which events order memory accesses: a barrier orders the whole block, a warp collective the
// lanes taking part, an atomic (like fence + atomic on the GPU) the threads using it, and a block
// is ordered after the previous one (shared memory and stacks are reused). Any other pair of
// accesses to one address from two threads, one of them a write, is reported as a data race:
// a missing __syncthreads or __syncwarp, found whatever order the threads run in. The
// emulator's own bookkeeping runs with TSan's checks switched off (Internal).
#ifdef __SANITIZE_THREAD__
extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_set_fiber_name(void* fiber, const char* name);
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
}
struct Internal {
    Internal() { __tsan_ignore_thread_begin(); }
    ~Internal() { __tsan_ignore_thread_end(); }
};
inline void hb_release(const void* p) { __tsan_release(const_cast<void*>(p)); }
inline void hb_acquire(const void* p) { __tsan_acquire(const_cast<void*>(p)); }
inline void* fiber_new() { return __tsan_create_fiber(0); }
inline void* fiber_current() { return __tsan_get_current_fiber(); }
inline void fiber_switch(void* f) { __tsan_switch_to_fiber(f, 1 /* no synchronisation */); }
inline void fiber_name(void* f, const char* name) { __tsan_set_fiber_name(f, name); }
#else
struct Internal {
    Internal() {}
};
inline void hb_release(const void*) {}
inline void hb_acquire(const void*) {}
inline void* fiber_new() { return nullptr; }
inline void* fiber_current() { return nullptr; }
inline void fiber_switch(void*) {}
inline void fiber_name(void*, const char*) {}
#endif

// Every failure the emulator detects in a kernel: a launch throws it.
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The largest dynamic shared memory a launch may ask for (H100/H200: 227 KiB per block).
constexpr size_t MAX_DYNAMIC_SMEM = 227 * 1024;
// Above this a real launch needs cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES) first.
constexpr size_t DEFAULT_DYNAMIC_SMEM = 48 * 1024;

enum class State { Ready, AtBarrier, AtWarp, Done };

// A source location where a thread waits (barrier or warp collective).
struct Site {
    const char* file = "";
    int line = 0;
};

struct Thread {
    Context ctx;
    void* fiber = nullptr;  // TSan's context for this thread (EMU_TSAN=1 only)
    uint3 idx;
    int linear = 0, warp = 0, lane = 0;
    State state = State::Ready;
    Site site;
    const char* op = "";  // what it waits at
    int pred = 0;         // its predicate for __syncthreads_count/and/or
    char* stack = nullptr;
    // cp.async copies issued but not completed yet (emu_device.h), and the groups committed.
    struct Copy {
        void* dst;
        unsigned char bytes[16];
        int size;
        int group;  // 0 while not committed
    };
    std::vector<Copy> copies;
    int groups = 0;
};

struct Warp;
using CollectiveFn = void (*)(Warp&);

// One warp of the running block, with at most one pending collective operation.
struct Warp {
    unsigned exists = 0;  // lanes that exist (the last warp of a block may be partial)
    unsigned done = 0;    // lanes whose thread has returned
    const char* op = nullptr;  // name of the pending collective, null when none
    CollectiveFn fn = nullptr;
    unsigned mask = 0, arrived = 0;
    unsigned gen = 0;  // collectives completed (selects the TSan sync object)
    Site site;
    void* data[32] = {};  // each arrived lane's argument/result record
};

// The state of the running launch. Everything runs on one OS thread, so plain globals work.
struct Runtime {
    const char* kernel = nullptr;
    dim3 grid, block;
    uint3 block_idx{0, 0, 0};
    size_t smem_bytes = 0;
    std::vector<Thread> threads;
    std::vector<Warp> warps;
    Thread* cur = nullptr;  // the running thread, null in the scheduler
    Context sched_ctx;
    void* sched_fiber = nullptr;
    // Addresses that stand for synchronisation events in TSan's happens-before (EMU_TSAN=1).
    // Barriers and warp collectives alternate between two objects, so a thread that already
    // passed a barrier and runs on cannot leak its next accesses to a slower thread that is
    // still waking up from the same barrier.
    char sync_block_start = 0, sync_block_end = 0, sync_barrier[2] = {}, sync_warp[32][2] = {};
    unsigned barrier_gen = 0;
    std::function<void()> body;  // calls the kernel with the launch's arguments
    std::string error;
    int done_count = 0;
    int barrier_result = 0;
    uint64_t rng = 0;
    std::vector<char*> stacks;  // pool, reused by every block
    std::vector<void*> fibers;  // TSan's fibers (EMU_TSAN=1), reused like the stacks
    size_t stack_bytes = 0;
};
inline Runtime rt;

inline const uint3& thread_idx() { return rt.cur->idx; }

inline uint64_t next_random() {  // xorshift64*
    rt.rng ^= rt.rng >> 12;
    rt.rng ^= rt.rng << 25;
    rt.rng ^= rt.rng >> 27;
    return rt.rng * 2685821657736338717ull;
}

inline std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline std::string format(const char* fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

inline std::string where() {
    if (!rt.kernel) return "emu";
    std::string s = format("kernel '%s' block (%u,%u,%u)", rt.kernel, rt.block_idx.x,
                           rt.block_idx.y, rt.block_idx.z);
    if (rt.cur)
        s += format(" thread (%u,%u,%u)", rt.cur->idx.x, rt.cur->idx.y, rt.cur->idx.z);
    return s;
}

// Reports a bug found in the kernel: the launch stops and throws emu::Error.
[[noreturn]] inline void fail(const std::string& what) {
    std::string msg = where() + ": " + what;
    if (rt.cur) {  // inside a kernel thread: hand the message to the scheduler, never resume
        {
            Internal internal;
            rt.error = msg;
            hb_release(&rt.sync_block_end);
        }
        fiber_switch(rt.sched_fiber);
        context_switch(rt.cur->ctx, rt.sched_ctx);
        std::abort();
    }
    throw Error(msg);
}

inline void yield() {
    fiber_switch(rt.sched_fiber);
    context_switch(rt.cur->ctx, rt.sched_ctx);
}

// ---- __syncthreads --------------------------------------------------------------------------
inline int syncthreads(const char* file, int line, const char* op = "__syncthreads", int pred = 0) {
    Internal internal;
    const unsigned gen = rt.barrier_gen;
    hb_release(&rt.sync_barrier[gen & 1]);
    Thread& t = *rt.cur;
    t.state = State::AtBarrier;
    t.site = {file, line};
    t.op = op;
    t.pred = pred;
    yield();
    hb_acquire(&rt.sync_barrier[gen & 1]);
    return rt.barrier_result;
}

// ---- warp collectives --------------------------------------------------------------------
inline std::string lanes(unsigned m) {
    std::string s;
    for (int i = 0; i < 32; i++)
        if (m >> i & 1) {
            int j = i;
            while (j + 1 < 32 && (m >> (j + 1) & 1)) j++;
            if (!s.empty()) s += ",";
            s += j == i ? format("%d", i) : format("%d-%d", i, j);
            i = j;
        }
    return s.empty() ? "none" : s;
}

// Completes the pending collective of `w` if every lane it waits for has arrived.
inline bool try_complete(Warp& w) {
    const unsigned need = w.mask & w.exists & ~w.done;
    if ((w.arrived & need) != need) return false;
    w.fn(w);
    const size_t first = (size_t)(&w - rt.warps.data()) * 32;
    for (int l = 0; l < 32; l++) {
        if (!(w.arrived >> l & 1)) continue;
        Thread& t = rt.threads[first + l];
        if (&t != rt.cur) t.state = State::Ready;
    }
    w.op = nullptr;
    w.arrived = 0;
    w.gen++;
    return true;
}

// Called by every lane of a warp collective; `data` is this lane's record (in/out), read by
// `fn` when the last lane arrives. Returns when the collective is complete.
inline void warp_collective(const char* op, CollectiveFn fn, unsigned mask, void* data,
                            const char* file, int line) {
    Internal internal;
    Thread& t = *rt.cur;
    struct Order {  // the lanes' accesses before the collective happen before those after it
        const void* p;
        Order(const void* p_) : p(p_) { hb_release(p); }
        ~Order() { hb_acquire(p); }
    } order(&rt.sync_warp[t.warp % 32][rt.warps[t.warp].gen & 1]);
    Warp& w = rt.warps[t.warp];
    const unsigned bit = 1u << t.lane;
    if (!(mask & bit))
        fail(format("%s at %s:%d: mask 0x%08x does not include the calling lane %d", op, file,
                    line, mask, t.lane));
    if (w.op && (w.fn != fn || w.mask != mask))
        fail(format("lane %d calls %s (mask 0x%08x) at %s:%d while lanes %s of its warp wait at "
                    "%s (mask 0x%08x) at %s:%d",
                    t.lane, op, mask, file, line, lanes(w.arrived).c_str(), w.op, w.mask,
                    w.site.file, w.site.line));
    if (!w.op) {
        w.op = op;
        w.fn = fn;
        w.mask = mask;
        w.arrived = 0;
        w.site = {file, line};
    }
    w.data[t.lane] = data;
    w.arrived |= bit;
    if (try_complete(w)) return;
    t.state = State::AtWarp;
    t.site = {file, line};
    t.op = op;
    yield();
}

// ---- coroutines and the block scheduler --------------------------------------------------
inline void finish_copies(Thread& t, int keep_groups);

inline void thread_main() {
    hb_acquire(&rt.sync_block_start);  // everything before the block happens before this thread
    rt.body();
    {
        Internal internal;
        hb_release(&rt.sync_block_end);  // ... and this thread before everything after the block
        Thread& t = *rt.cur;
        finish_copies(t, -1);
        t.state = State::Done;
        rt.done_count++;
        Warp& w = rt.warps[t.warp];
        w.done |= 1u << t.lane;
        if (w.op) try_complete(w);  // the others may have waited only for this lane
    }
    fiber_switch(rt.sched_fiber);
    context_switch(rt.cur->ctx, rt.sched_ctx);
    std::abort();  // never resumed
}

inline size_t stack_bytes() {
    const char* kb = std::getenv("EMU_STACK_KB");
    return (kb ? (size_t)std::atol(kb) : 256) * 1024;
}

// A stack with a guard page below it (an overflow faults instead of corrupting memory).
inline char* new_stack(size_t bytes) {
    void* p = mmap(nullptr, bytes + 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw Error("emu: out of memory for thread stacks");
    mprotect(p, 4096, PROT_NONE);
    return (char*)p + 4096;
}

inline std::string describe_waiters() {
    std::string s;
    for (const Thread& t : rt.threads) {
        if (t.state == State::Done || t.state == State::Ready) continue;
        s += format("\n  thread (%u,%u,%u) (warp %d lane %d) waits at %s %s:%d", t.idx.x, t.idx.y,
                    t.idx.z, t.warp, t.lane, t.op, t.site.file, t.site.line);
        if (s.size() > 1500) return s + "\n  ...";
    }
    return s;
}

// Called by the scheduler when no thread can run: completes a barrier, or reports the bug.
inline void release_barrier() {
    const int n = (int)rt.threads.size();
    int at_barrier = 0;
    const Thread* first = nullptr;
    for (const Thread& t : rt.threads)
        if (t.state == State::AtBarrier) {
            at_barrier++;
            if (!first) first = &t;
        }
    if (at_barrier == 0 || at_barrier + rt.done_count < n)
        fail("deadlock: no thread can continue" + describe_waiters());
    if (rt.done_count > 0)
        fail(format("%d threads returned while %d others wait at %s %s:%d (a barrier must be "
                    "reached by all threads of the block or none)",
                    rt.done_count, at_barrier, first->op, first->site.file, first->site.line) +
             describe_waiters());
    for (const Thread& t : rt.threads)
        if (t.site.line != first->site.line || std::strcmp(t.site.file, first->site.file) != 0 ||
            std::strcmp(t.op, first->op) != 0)
            fail(format("threads wait at different barriers: thread (%u,%u,%u) at %s %s:%d, "
                        "thread (%u,%u,%u) at %s %s:%d",
                        first->idx.x, first->idx.y, first->idx.z, first->op, first->site.file,
                        first->site.line, t.idx.x, t.idx.y, t.idx.z, t.op, t.site.file,
                        t.site.line));
    // __syncthreads_count / _and / _or: the result every thread gets.
    int count = 0;
    for (const Thread& t : rt.threads) count += t.pred != 0;
    rt.barrier_result = std::strcmp(first->op, "__syncthreads_and") == 0 ? count == n
                        : std::strcmp(first->op, "__syncthreads_or") == 0 ? count > 0
                                                                         : count;
    for (Thread& t : rt.threads) t.state = State::Ready;
    rt.barrier_gen++;
}

inline void run_block() {
    const int n = (int)(rt.block.x * rt.block.y * rt.block.z);
    const int nwarps = (n + 31) / 32;
    rt.threads.assign(n, Thread{});
    rt.warps.assign(nwarps, Warp{});
    rt.done_count = 0;
    if (rt.stack_bytes == 0) rt.stack_bytes = stack_bytes();
    while ((int)rt.stacks.size() < n) rt.stacks.push_back(new_stack(rt.stack_bytes));
    for (int i = 0; i < n; i++) {
        Thread& t = rt.threads[i];
        t.idx = uint3{i % rt.block.x, i / rt.block.x % rt.block.y, i / (rt.block.x * rt.block.y)};
        t.linear = i;
        t.warp = i / 32;
        t.lane = i % 32;
        rt.warps[t.warp].exists |= 1u << t.lane;
        t.stack = rt.stacks[i];
        context_start(t.ctx, t.stack, rt.stack_bytes, thread_main);
        if (fiber_current()) {  // creating a TSan fiber is slow: reuse them, blocks are ordered
            if ((int)rt.fibers.size() <= i) rt.fibers.push_back(fiber_new());
            t.fiber = rt.fibers[i];
            char name[64];  // TSan's reports name the threads
            std::snprintf(name, sizeof name, "CUDA thread (%u,%u,%u) of block (%u,%u,%u)", t.idx.x,
                          t.idx.y, t.idx.z, rt.block_idx.x, rt.block_idx.y, rt.block_idx.z);
            fiber_name(t.fiber, name);
        }
    }
    std::vector<int> order(n);
    for (int i = 0; i < n; i++) order[i] = i;
    while (rt.done_count < n) {
        for (int i = n - 1; i > 0; i--) std::swap(order[i], order[next_random() % (i + 1)]);
        bool ran = false;
        for (int i : order) {
            Thread& t = rt.threads[i];
            if (t.state != State::Ready) continue;
            rt.cur = &t;
            fiber_switch(t.fiber);
            context_switch(rt.sched_ctx, t.ctx);
            rt.cur = nullptr;
            ran = true;
            if (!rt.error.empty()) {
                std::string e = rt.error;
                rt.error.clear();
                throw Error(e);
            }
        }
        if (!ran && rt.done_count < n) release_barrier();
    }
}

// ---- shared memory -------------------------------------------------------------------------
// `__shared__` is `thread_local`: all coroutines run on one OS thread, so that is one instance
// for the whole block, and it works both for `__shared__ float x[32];` inside functions and for
// `extern __shared__ ... smem[];` (which refers to the array below). Before each block the
// whole thread-local area of the program (all __shared__ variables) is filled with 0xff bytes:
// a read of shared memory that no thread wrote gives NaN (floats, bf16) or -1 (integers).
struct TlsArea {
    unsigned char* p = nullptr;
    size_t n = 0;
};
// The TLS block of the object (program or shared library) that holds `smem`: every `__shared__`
// variable of the kernels compiled with this header lives there, and nothing of any other object
// (a Rust test binary that loads the kernels as a library keeps its own thread-locals intact).
inline int find_tls(dl_phdr_info* info, size_t, void* out) {
    auto* a = (TlsArea*)out;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_TLS && info->dlpi_tls_data) {
            auto* p = (unsigned char*)info->dlpi_tls_data;
            size_t n = info->dlpi_phdr[i].p_memsz;
            if (a->p <= p + n && p <= a->p) {  // a->p holds &smem on entry
                a->p = p;
                a->n = n;
                return 1;
            }
        }
    return 0;
}
}  // namespace emu

// The dynamic shared memory of the running block; a kernel declares it with exactly
// `extern __shared__ __align__(16) unsigned char smem[];`.
alignas(128) inline thread_local unsigned char smem[emu::MAX_DYNAMIC_SMEM + 256];

namespace emu {

// Looked up on every call, not cached: each OS thread has its own TLS block, and a cache kept in
// that block would be overwritten by the poison itself.
inline void poison_shared() {
    TlsArea area{smem, 0};
    if (dl_iterate_phdr(find_tls, &area)) std::memset(area.p, 0xff, area.n);
    else std::memset(smem, 0xff, sizeof smem);
}

// After a block: the bytes of `smem` past the requested size must still be 0xff.
inline void check_smem_overrun() {
    // Word by word (this runs after every block), then byte by byte to name the first one.
    size_t start = rt.smem_bytes;
    while (start % 8 && start < sizeof smem && smem[start] == 0xff) start++;
    if (start % 8 == 0) {
        const uint64_t* w = (const uint64_t*)(smem + start);
        const size_t words = (sizeof smem - start) / 8;
        size_t k = 0;
        while (k < words && w[k] == ~0ull) k++;
        start += 8 * k;
    }
    for (size_t i = start; i < sizeof smem; i++)
        if (smem[i] != 0xff) {
            rt.cur = nullptr;
            fail(format("wrote dynamic shared memory at byte %zu, beyond the %zu bytes the launch "
                        "requested",
                        i, rt.smem_bytes));
        }
}

// ---- launch --------------------------------------------------------------------------------
inline void check_guards();  // emu_mem.h: bytes around each emu::Array untouched

inline uint64_t seed() {
    const char* s = std::getenv("EMU_SEED");
    return s ? std::strtoull(s, nullptr, 0) : 1;
}

inline void run_grid(const char* name, dim3 grid, dim3 block, size_t smem_bytes) {
    if (rt.kernel) throw Error(format("emu: kernel '%s' launched from inside '%s'", name, rt.kernel));
    Internal internal;
    rt.sched_fiber = fiber_current();
    rt.kernel = name;
    rt.grid = grid;
    rt.block = block;
    rt.smem_bytes = smem_bytes;
    rt.block_idx = uint3{0, 0, 0};
    rt.error.clear();
    if (rt.rng == 0) rt.rng = seed() * 0x9E3779B97F4A7C15ull | 1;
    struct Done {  // leaves the runtime clean even when the launch throws
        ~Done() {
            // After a failed block too: its threads stopped wherever they were.
            hb_acquire(&rt.sync_block_end);
            for (const char& b : rt.sync_barrier) hb_acquire(&b);
            for (const auto& w : rt.sync_warp) hb_acquire(&w[0]), hb_acquire(&w[1]);
            // Threads stopped inside the emulator keep TSan's checks off: new fibers next time.
            if (std::uncaught_exceptions() > 0) rt.fibers.clear();
            rt.kernel = nullptr;
            rt.cur = nullptr;
        }
    } done;
    const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.z > 64)
        fail(format("invalid block (%u,%u,%u): 1..1024 threads, z <= 64", block.x, block.y, block.z));
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 ||
        grid.x > 2147483647u)
        fail(format("invalid grid (%u,%u,%u)", grid.x, grid.y, grid.z));
    if (smem_bytes > MAX_DYNAMIC_SMEM)
        fail(format("%zu bytes of dynamic shared memory requested, the maximum is %zu", smem_bytes,
                    MAX_DYNAMIC_SMEM));
    if (smem_bytes > DEFAULT_DYNAMIC_SMEM) {
        static bool told = false;
        if (!told)
            std::fprintf(stderr,
                         "emu: note: '%s' uses %zu bytes of dynamic shared memory; on a GPU more "
                         "than 48 KiB needs cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)\n",
                         name, smem_bytes);
        told = true;
    }
    const size_t nblocks = (size_t)grid.x * grid.y * grid.z;
    std::vector<size_t> order(nblocks);
    for (size_t i = 0; i < nblocks; i++) order[i] = i;
    for (size_t i = nblocks; i > 1; i--) std::swap(order[i - 1], order[next_random() % i]);
    for (size_t b : order) {
        rt.block_idx = uint3{(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y),
                             (unsigned)(b / ((size_t)grid.x * grid.y))};
        poison_shared();
        hb_release(&rt.sync_block_start);  // the host and earlier blocks happen before this block
        run_block();
        hb_acquire(&rt.sync_block_end);
        check_smem_overrun();
    }
    rt.block_idx = uint3{0, 0, 0};
    check_guards();
}

// The name of a kernel, from the program's symbol table (needs -rdynamic).
inline const char* kernel_name(void* fn) {
    Dl_info info;
    if (dladdr(fn, &info) && info.dli_sname) return info.dli_sname;
    return "kernel";
}

// launch(kernel, grid, block, dynamic_smem_bytes, args...): runs kernel<<<grid, block, smem>>>
// to completion. Arguments are converted to the kernel's parameter types, as in CUDA.
// Throws emu::Error when the emulator catches a bug.
template <typename... P, typename... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem_bytes, A&&... args) {
    static_assert(sizeof...(P) == sizeof...(A), "wrong number of kernel arguments");
    std::tuple<P...> params(std::forward<A>(args)...);
    rt.body = [&] { std::apply(kernel, params); };
    run_grid(kernel_name((void*)kernel), grid, block, smem_bytes);
    rt.body = nullptr;
}

}  // namespace emu
