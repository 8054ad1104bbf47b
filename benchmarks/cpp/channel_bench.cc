// benchmarks/cpp/channel_bench.cc: Channel<int64_t> against raw moodycamel
// (busy try_dequeue) and moodycamel::BlockingConcurrentQueue, same run.
//
// Workloads (N items per benchmark iteration, int64 payload):
//   Spsc      1 producer, 1 consumer, N = 2^18.
//   Mpmc      2 producers x 2 consumers, N = 2^18 in total (on 2 cores this
//             mostly measures contention and scheduling).
//   PingPong  2 threads, one request and one reply per round trip, 2^14
//             round trips; the "per_roundtrip" counter (seconds) is the figure.
// Flavors: Unbounded = Channel<int64_t>::Create(0), Bounded1024 =
// Create(1024), RawMoodycamel = ConcurrentQueue with busy polling,
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

// ---- Channel ---------------------------------------------------------------

void ChannelSpsc(benchmark::State& state, size_t capacity) {
  for (auto _ : state) {
    auto ch = Channel<int64_t>::Create(capacity);
    std::thread producer([&] {
      for (int64_t i = 0; i < kItems; ++i) {
        int64_t v = i;
        ch->send(v, kForever);
      }
    });
    int64_t out, sum = 0;
    for (int64_t i = 0; i < kItems; ++i) {
      ch->recv(out, kForever);
      sum += out;
    }
    benchmark::DoNotOptimize(sum);
    producer.join();
  }
  Finish(state, kItems);
}

void ChannelMpmc(benchmark::State& state, size_t capacity) {
  for (auto _ : state) {
    auto ch = Channel<int64_t>::Create(capacity);
    std::atomic<int> producers_left{2};
    std::vector<std::thread> threads;
    for (int p = 0; p < 2; ++p) {
      threads.emplace_back([&] {
        for (int64_t i = 0; i < kItems / 2; ++i) {
          int64_t v = i;
          ch->send(v, kForever);
        }
        if (producers_left.fetch_sub(1) == 1) ch->close();
      });
    }
    threads.emplace_back([&] {
      int64_t out;
      while (ch->recv(out, kForever) == OpStatus::kOk) {
        benchmark::DoNotOptimize(out);
      }
    });
    int64_t out;
    while (ch->recv(out, kForever) == OpStatus::kOk) {
      benchmark::DoNotOptimize(out);
    }
    for (auto& t : threads) t.join();
  }
  Finish(state, kItems);
}

void ChannelPingPong(benchmark::State& state, size_t capacity) {
  for (auto _ : state) {
    auto ping = Channel<int64_t>::Create(capacity);
    auto pong = Channel<int64_t>::Create(capacity);
    std::thread echo([&] {
      int64_t v;
      while (ping->recv(v, kForever) == OpStatus::kOk) pong->send(v, kForever);
    });
    for (int64_t i = 0; i < kRoundTrips; ++i) {
      int64_t v = i, out;
      ping->send(v, kForever);
      pong->recv(out, kForever);
    }
    ping->close();
    echo.join();
  }
  FinishRoundTrips(state);
}

void BM_Unbounded_Spsc(benchmark::State& s) { ChannelSpsc(s, 0); }
void BM_Bounded1024_Spsc(benchmark::State& s) { ChannelSpsc(s, 1024); }
void BM_Unbounded_Mpmc(benchmark::State& s) { ChannelMpmc(s, 0); }
void BM_Bounded1024_Mpmc(benchmark::State& s) { ChannelMpmc(s, 1024); }
void BM_Unbounded_PingPong(benchmark::State& s) { ChannelPingPong(s, 0); }
void BM_Bounded1024_PingPong(benchmark::State& s) { ChannelPingPong(s, 1024); }
void BM_Bounded1_PingPong(benchmark::State& s) { ChannelPingPong(s, 1); }

// ---- moodycamel: raw (busy try_dequeue) or blocking (wait_dequeue) -------------

using RawQueue = moodycamel::ConcurrentQueue<int64_t>;
using BlockingQueue = moodycamel::BlockingConcurrentQueue<int64_t>;

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

template <typename Q>
void MoodycamelSpsc(benchmark::State& state) {
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
void MoodycamelMpmc(benchmark::State& state) {
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
void MoodycamelPingPong(benchmark::State& state) {
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

void BM_RawMoodycamel_Spsc(benchmark::State& s) { MoodycamelSpsc<RawQueue>(s); }
void BM_RawMoodycamel_Mpmc(benchmark::State& s) { MoodycamelMpmc<RawQueue>(s); }
void BM_RawMoodycamel_PingPong(benchmark::State& s) { MoodycamelPingPong<RawQueue>(s); }
void BM_BlockingMoodycamel_Spsc(benchmark::State& s) { MoodycamelSpsc<BlockingQueue>(s); }
void BM_BlockingMoodycamel_Mpmc(benchmark::State& s) { MoodycamelMpmc<BlockingQueue>(s); }
void BM_BlockingMoodycamel_PingPong(benchmark::State& s) { MoodycamelPingPong<BlockingQueue>(s); }

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

void BM_RawFutex_PingPong(benchmark::State& state) {
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

#define XCHANNELS_BENCH(fn) \
  BENCHMARK(fn)->UseRealTime()->Unit(benchmark::kMillisecond)

XCHANNELS_BENCH(BM_RawMoodycamel_Spsc);
XCHANNELS_BENCH(BM_BlockingMoodycamel_Spsc);
XCHANNELS_BENCH(BM_Unbounded_Spsc);
XCHANNELS_BENCH(BM_Bounded1024_Spsc);
XCHANNELS_BENCH(BM_RawMoodycamel_Mpmc);
XCHANNELS_BENCH(BM_BlockingMoodycamel_Mpmc);
XCHANNELS_BENCH(BM_Unbounded_Mpmc);
XCHANNELS_BENCH(BM_Bounded1024_Mpmc);
XCHANNELS_BENCH(BM_RawMoodycamel_PingPong);
XCHANNELS_BENCH(BM_BlockingMoodycamel_PingPong);
XCHANNELS_BENCH(BM_RawFutex_PingPong);
XCHANNELS_BENCH(BM_Unbounded_PingPong);
XCHANNELS_BENCH(BM_Bounded1024_PingPong);
XCHANNELS_BENCH(BM_Bounded1_PingPong);

}  // namespace
}  // namespace xchannels

BENCHMARK_MAIN();
