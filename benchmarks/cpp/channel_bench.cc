// benchmarks/cpp/channel_bench.cc: Channel<int64_t> against raw moodycamel
// (busy try_dequeue) and moodycamel::BlockingConcurrentQueue, same run.
//
// Workloads (N items per benchmark iteration, int64 payload):
//   Spsc      1 producer, 1 consumer, N = 2^18.
//   Mpmc      2 producers x 2 consumers, N = 2^18 in total (on 2 cores this
//             mostly measures contention and scheduling).
//   PingPong  2 threads, one request and one reply per round trip, 2^14
//             round trips; the "per_roundtrip" counter (seconds) is the figure.
// Every queue runs the same workload templates (a Channel's stop marker is an
// item, as moodycamel's). Flavors: Unbounded = Channel<int64_t>::Create(0),
// Bounded1024 = Create(1024), Bounded1 = Create(1) (PingPong only),
// RawMoodycamel = ConcurrentQueue with busy polling,
// BlockingMoodycamel = BlockingConcurrentQueue (wait_dequeue), RawFutex =
// no queue at all: two words and a futex wait/wake on every message, so both
// sides park every time (the floor of a parked round trip on this machine:
// the pingpong-busy goal is read against it).
#include <benchmark/benchmark.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "blockingconcurrentqueue.h"
#include "concurrentqueue.h"
#include "xchannels/channel.h"

namespace xchannels {
namespace {

constexpr int64_t kItems = 1 << 18;
constexpr int64_t kRoundTrips = 1 << 14;
constexpr Deadline kForever = std::nullopt;

void Finish(benchmark::State& state, int64_t items_per_iteration) {
  state.SetItemsProcessed(state.iterations() * items_per_iteration);
}

// Seconds per round trip (printed with an SI prefix: 1.5u = 1.5 us).
void FinishRoundTrips(benchmark::State& state) {
  Finish(state, kRoundTrips);
  state.counters["per_roundtrip"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kRoundTrips),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// ---- the queues, one face: enqueue(v) and Take(q) ---------------------------------

using RawQueue = moodycamel::ConcurrentQueue<int64_t>;  // busy try_dequeue
using BlockingQueue = moodycamel::BlockingConcurrentQueue<int64_t>;  // wait_dequeue

template <size_t kCapacity>
struct ChannelQueue {
  Ref<Channel<int64_t>> ch = Channel<int64_t>::Create(kCapacity);
  void enqueue(int64_t v) { ch->send(v, kForever); }
};

template <size_t kCapacity>
int64_t Take(ChannelQueue<kCapacity>& q) {
  int64_t out;
  q.ch->recv(out, kForever);
  return out;
}

int64_t Take(RawQueue& q) {
  int64_t out;
  while (!q.try_dequeue(out)) {
  }
  return out;
}

int64_t Take(BlockingQueue& q) {
  int64_t out;
  q.wait_dequeue(out);
  return out;
}

// ---- the workloads ------------------------------------------------------------------

template <typename Q>
void Spsc(benchmark::State& state) {
  for (auto _ : state) {
    Q q;
    std::thread producer([&] {
      for (int64_t i = 0; i < kItems; ++i) q.enqueue(i);
    });
    int64_t sum = 0;
    for (int64_t i = 0; i < kItems; ++i) sum += Take(q);
    benchmark::DoNotOptimize(sum);
    producer.join();
  }
  Finish(state, kItems);
}

// The last producer to finish puts one stop marker (-1) per consumer.
template <typename Q>
void Mpmc(benchmark::State& state) {
  for (auto _ : state) {
    Q q;
    std::atomic<int> producers_left{2};
    std::vector<std::thread> threads;
    for (int p = 0; p < 2; ++p) {
      threads.emplace_back([&] {
        for (int64_t i = 0; i < kItems / 2; ++i) q.enqueue(i);
        if (producers_left.fetch_sub(1) == 1) {
          q.enqueue(-1);
          q.enqueue(-1);
        }
      });
    }
    auto consume = [&] {
      while (Take(q) >= 0) {
      }
    };
    threads.emplace_back(consume);
    consume();
    for (auto& t : threads) t.join();
  }
  Finish(state, kItems);
}

template <typename Q>
void PingPong(benchmark::State& state) {
  for (auto _ : state) {
    Q ping, pong;
    std::thread echo([&] {
      for (int64_t i = 0; i < kRoundTrips; ++i) pong.enqueue(Take(ping));
    });
    for (int64_t i = 0; i < kRoundTrips; ++i) {
      ping.enqueue(i);
      benchmark::DoNotOptimize(Take(pong));
    }
    echo.join();
  }
  FinishRoundTrips(state);
}

// ---- raw futex: the parking floor -------------------------------------------------

// Waits until *word == want, parking on the futex without spinning.
void FutexAwait(std::atomic<uint32_t>& word, uint32_t want) {
  for (uint32_t cur = word.load(); cur != want; cur = word.load()) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAIT_PRIVATE, cur,
            nullptr, nullptr, 0);
  }
}

void FutexPost(std::atomic<uint32_t>& word, uint32_t value) {
  word.store(value);
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1,
          nullptr, nullptr, 0);
}

void RawFutexPingPong(benchmark::State& state) {
  for (auto _ : state) {
    alignas(64) std::atomic<uint32_t> ping{0};
    alignas(64) std::atomic<uint32_t> pong{0};
    std::thread echo([&] {
      for (uint32_t i = 1; i <= kRoundTrips; ++i) {
        FutexAwait(ping, i);
        FutexPost(pong, i);
      }
    });
    for (uint32_t i = 1; i <= kRoundTrips; ++i) {
      FutexPost(ping, i);
      FutexAwait(pong, i);
    }
    echo.join();
  }
  FinishRoundTrips(state);
}

void Add(const std::string& name, void (*fn)(benchmark::State&)) {
  benchmark::RegisterBenchmark(name.c_str(), fn)->UseRealTime()->Unit(benchmark::kMillisecond);
}

// BM_<flavor>_Spsc, _Mpmc and _PingPong (only the last with ``pingpong_only``).
template <typename Q>
void AddFlavor(const std::string& flavor, bool pingpong_only = false) {
  if (!pingpong_only) {
    Add("BM_" + flavor + "_Spsc", Spsc<Q>);
    Add("BM_" + flavor + "_Mpmc", Mpmc<Q>);
  }
  Add("BM_" + flavor + "_PingPong", PingPong<Q>);
}

}  // namespace
}  // namespace xchannels

int main(int argc, char** argv) {
  using namespace xchannels;
  AddFlavor<RawQueue>("RawMoodycamel");
  AddFlavor<BlockingQueue>("BlockingMoodycamel");
  AddFlavor<ChannelQueue<0>>("Unbounded");
  AddFlavor<ChannelQueue<1024>>("Bounded1024");
  AddFlavor<ChannelQueue<1>>("Bounded1", /*pingpong_only=*/true);
  Add("BM_RawFutex_PingPong", RawFutexPingPong);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
