// emu_mem.h: "device memory" for tests, with out-of-bounds detection.
//
// emu::Array<T> is a buffer placed like cudaMalloc places it (256-byte aligned) right before an
// inaccessible guard page, with another guard page in front. The bytes between the buffer and
// the guard pages are filled with 0xff:
// - a kernel that reads a few elements past the end gets NaN (floats) or -1 (integers);
// - a kernel that writes there is reported after the launch (check_guards);
// - an access further away hits a guard page: the SIGSEGV handler prints which kernel, block
//   and thread made it and which buffer is nearest, then exits.
// poison() fills a buffer with 0xff too, so elements a kernel forgot to write stay NaN.
#pragma once
#include <signal.h>
#include <unistd.h>
#include <cstdio>
#include <string>
#include <vector>
#include "emu_sched.h"

namespace emu {

struct Allocation {
    unsigned char *page_lo, *page_hi;  // the accessible pages
    unsigned char* base;
    size_t bytes;
    std::string name;
};
inline std::vector<Allocation*> allocations;

inline void install_fault_handler();

inline std::string describe_address(const void* addr) {
    const unsigned char* a = (const unsigned char*)addr;
    const Allocation* best = nullptr;
    long long best_dist = 0;
    for (const Allocation* al : allocations) {
        long long d = a < al->base ? (long long)(al->base - a) : a >= al->base + al->bytes ? (long long)(a - (al->base + al->bytes)) + 1 : 0;
        if (!best || d < best_dist) best = al, best_dist = d;
    }
    if (!best || best_dist > (1 << 20)) return "";
    if (a < best->base)
        return format(" (%lld bytes before buffer '%s' of %zu bytes)", (long long)(best->base - a),
                      best->name.c_str(), best->bytes);
    return format(" (byte offset %lld of buffer '%s', which has %zu bytes)",
                  (long long)(a - best->base), best->name.c_str(), best->bytes);
}

// Called after every launch: the bytes around each buffer must still be 0xff.
inline void check_guards() {
    for (const Allocation* al : allocations) {
        for (const unsigned char* p = al->page_lo; p < al->page_hi; p++) {
            if (p == al->base) p += al->bytes;
            if (p < al->page_hi && *p != 0xff) {
                std::string msg = "wrote outside a buffer: address " +
                                  format("%p", (const void*)p) + describe_address(p);
                std::memset(al->page_lo, 0xff, al->base - al->page_lo);  // report it once
                std::memset(al->base + al->bytes, 0xff, al->page_hi - (al->base + al->bytes));
                fail(msg);
            }
        }
    }
}

template <typename T> class Array {
public:
    explicit Array(size_t n = 0, std::string name = "buffer") : n_(n) {
        install_fault_handler();
        const size_t page = 4096, bytes = n * sizeof(T);
        const size_t rounded = (bytes + 255) / 256 * 256, span = (rounded + page - 1) / page * page;
        auto* p = (unsigned char*)mmap(nullptr, span + 2 * page, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw Error("emu: out of memory");
        mprotect(p, page, PROT_NONE);
        mprotect(p + page + span, page, PROT_NONE);
        al_ = new Allocation{p + page, p + page + span, p + page + span - rounded, bytes, name};
        std::memset(al_->page_lo, 0xff, span);
        std::memset(al_->base, 0, bytes);
        allocations.push_back(al_);
    }
    Array(const std::vector<T>& v, std::string name = "buffer") : Array(v.size(), name) {
        std::copy(v.begin(), v.end(), data());
    }
    Array(const Array&) = delete;
    Array& operator=(const Array&) = delete;
    ~Array() {
        allocations.erase(std::find(allocations.begin(), allocations.end(), al_));
        munmap(al_->page_lo - 4096, (al_->page_hi - al_->page_lo) + 2 * 4096);
        delete al_;
    }
    T* data() { return (T*)al_->base; }
    const T* data() const { return (const T*)al_->base; }
    size_t size() const { return n_; }
    T& operator[](size_t i) { return data()[i]; }
    const T& operator[](size_t i) const { return data()[i]; }
    T* begin() { return data(); }
    T* end() { return data() + n_; }
    const T* begin() const { return data(); }
    const T* end() const { return data() + n_; }
    // Every byte 0xff: NaN for float/bf16, -1 for integers.
    void poison() { std::memset(al_->base, 0xff, al_->bytes); }
    std::vector<T> to_vector() const { return std::vector<T>(begin(), end()); }

private:
    size_t n_;
    Allocation* al_;
};

inline void on_fault(int sig, siginfo_t* info, void*) {
    std::string msg = "emu: " + where() + ": invalid memory access (" +
                      (sig == SIGSEGV ? "SIGSEGV" : "SIGBUS") +
                      format(") at address %p", info->si_addr) + describe_address(info->si_addr);
    for (char* s : rt.stacks)
        if ((char*)info->si_addr >= s - 4096 && (char*)info->si_addr < s)
            msg += " (a thread's stack overflowed: set EMU_STACK_KB above " +
                   std::to_string(rt.stack_bytes / 1024) + ")";
    msg += "\n";
    std::fflush(stdout);  // keep the lines printed so far (not async-signal-safe; we exit anyway)
    if (write(2, msg.data(), msg.size()) < 0) {}
    _exit(3);
}

}  // namespace emu

// Under EMU_UBSAN=1 (-fsanitize=undefined), the sanitizer calls this before each report: it
// names the kernel, block and thread that made the access.
extern "C" __attribute__((weak, used)) void __ubsan_on_report() {
    std::fflush(stdout);
    std::fprintf(stderr, "\nemu: %s: undefined behaviour (e.g. a misaligned vector access):\n",
                 emu::where().c_str());
}

namespace emu {
inline void install_fault_handler() {
    static bool installed = false;
    if (installed) return;
    installed = true;
    static std::vector<char> alt(1 << 16);
    stack_t ss{};
    ss.ss_sp = alt.data();
    ss.ss_size = alt.size();
    sigaltstack(&ss, nullptr);
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, nullptr);
    sigaction(SIGBUS, &sa, nullptr);
}
}  // namespace emu
