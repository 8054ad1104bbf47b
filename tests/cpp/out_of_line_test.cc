// tests/cpp/out_of_line_test.cc: values that leave a process out of line:
// memfds (MemFile: sealed, or published for reuse), the flat form's
// descriptor references (fdrefs, kOutOfLine records and their copied
// bodies, aligned inline buffers), and ProcessChannel carrying them: large
// values (in one process and across fork), zero-copy buffers by
// descriptor (one of 5 GiB, never allocated), the accounting of
// out-of-line bytes, lost records, descriptors given back or pooled, and
// recovery after a writer died, and records a receiver must not wait on
// or cannot hold.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "process_test_util.h"
#include "test_peers.h"
#include "xchannels/flat_form.h"
#include "xchannels/mem_file.h"
#include "xchannels/message.h"
#include "xchannels/process_channel.h"
#include "xchannels/shared_buffer.h"

namespace xchannels {
namespace {

using namespace process_test_util;  // Make, Soon, Fork, Wait, KillAtExit
using Peer = ProcessChannelTestPeer;

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kGiB = size_t{1} << 30;

// Descriptors open in this process (the directory's own included: the
// same in every count).
int CountFds() {
  int n = 0;
  for ([[maybe_unused]] const auto& e :
       std::filesystem::directory_iterator("/proc/self/fd")) {
    ++n;
  }
  return n;
}

// A byte pattern that differs with the seed, the offset and the 2 KiB block
// (an error of a page or of an alignment shows).
uint8_t PatternByte(uint64_t seed, size_t i) {
  return static_cast<uint8_t>(seed * 131 + i * 7 + (i >> 11));
}
void Fill(uint8_t* p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; ++i) p[i] = PatternByte(seed, i);
}
bool HasPattern(const uint8_t* p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != PatternByte(seed, i)) return false;
  }
  return true;
}

Ref<SharedBuffer> PatternBuffer(size_t n, uint64_t seed,
                                BufferLayout layout = {}) {
  uint8_t* w = nullptr;
  Ref<SharedBuffer> b = SharedBuffer::Allocate(n, &w, std::move(layout));
  if (b) Fill(w, n, seed);
  return b;
}
Ref<SharedBuffer> PatternFileBuffer(size_t n, uint64_t seed) {
  std::vector<uint8_t> bytes(n);
  Fill(bytes.data(), n, seed);
  std::string err;
  Ref<SharedBuffer> b = SharedBuffer::CopyToFile(bytes.data(), n, {}, &err);
  EXPECT_TRUE(b) << err;
  return b;
}

Item BufferItem(Ref<SharedBuffer> b) {
  return Item::FromRef(Item::Kind::kBuffer, Ref<RefCounted>(std::move(b)));
}

// A message: a tuple of an int, a bytes blob and one buffer ref per buffer.
Item MessageItem(const std::vector<Ref<SharedBuffer>>& buffers,
                 size_t blob_bytes, uint64_t seed) {
  MessageWriter w;
  EXPECT_TRUE(w.Container(Tag::kTuple, 2 + buffers.size()));
  EXPECT_TRUE(w.Int64(static_cast<int64_t>(seed)));
  uint8_t* blob = w.Bytes(blob_bytes);
  EXPECT_NE(blob, nullptr);
  Fill(blob, blob_bytes, seed);
  for (const Ref<SharedBuffer>& b : buffers) {
    EXPECT_TRUE(w.RefValue(Tag::kBufferRef, RefKind::kBuffer,
                           Ref<RefCounted>(Ref<SharedBuffer>(b))));
  }
  MessagePtr m = w.Finish();
  EXPECT_NE(m, nullptr);
  return Item::FromMessage(std::move(m));
}

// The received form equals the sent message: same buffers (bytes and
// layouts) and the same payload.
void ExpectSameMessage(const Item& sent, const FlatItem& got) {
  const Message* m = sent.AsMessage();
  ASSERT_FALSE(got.is_buffer);
  ASSERT_EQ(got.buffers.size(), m->refs().size());
  for (size_t i = 0; i < got.buffers.size(); ++i) {
    const auto* want = static_cast<const SharedBuffer*>(m->refs()[i].object);
    const SharedBuffer& b = *got.buffers[i];
    ASSERT_EQ(b.size(), want->size()) << i;
    EXPECT_EQ(b.layout().format, want->layout().format) << i;
    EXPECT_EQ(b.shape(), want->shape()) << i;
    EXPECT_EQ(std::memcmp(b.data(), want->data(), b.size()), 0) << i;
    EXPECT_EQ(got.refs[i].object, got.buffers[i].get());
  }
  ASSERT_EQ(got.payload.size(), m->payload().size());
  EXPECT_EQ(std::memcmp(got.payload.data(), m->payload().data(),
                        got.payload.size()),
            0);
}

// A hand-written record, for the malformed variants.
struct Raw {
  std::vector<uint8_t> b;
  Raw& U8(uint8_t v) {
    b.push_back(v);
    return *this;
  }
  Raw& Varint(uint64_t v) {
    while (v >= 0x80) {
      b.push_back(static_cast<uint8_t>(v) | 0x80);
      v >>= 7;
    }
    b.push_back(static_cast<uint8_t>(v));
    return *this;
  }
  Raw& Bytes(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  Raw& Zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
  Raw& Ref(const FdRef& r) {
    RecordBuffer rb;
    FlattenOutOfLine(r, &rb);  // kind byte, then the 24 bytes of the fdref
    return Bytes(rb.data() + 1, kFdRefBytes);
  }
  // A lone buffer's head: kind, format "B", itemsize 1, ndim 0, nbytes.
  Raw& BufferHead(uint64_t nbytes) {
    return U8(static_cast<uint8_t>(FlatKind::kBuffer))
        .Varint(1)
        .U8('B')
        .Varint(1)
        .Varint(0)
        .Varint(nbytes);
  }
  std::span<const uint8_t> span() const { return b; }
};

FdRef RefTo(const MemFile& f, int fd = -1) {
  return FdRef{static_cast<uint32_t>(getpid()),
               static_cast<uint32_t>(fd < 0 ? f.fd() : fd), f.id(), f.size()};
}

// A sealed MemFile holding `bytes`.
Ref<MemFile> SealedFile(std::span<const uint8_t> bytes) {
  std::string err;
  Ref<MemFile> f = MemFile::Create(bytes.size(), /*populate=*/false, &err);
  EXPECT_TRUE(f) << err;
  if (!f) return nullptr;
  if (!bytes.empty()) std::memcpy(f->writable(), bytes.data(), bytes.size());
  EXPECT_TRUE(f->Seal(&err)) << err;
  return f;
}

// Opens what `record` names, as a receiver does.
std::vector<Ref<MemFile>> OpenAll(std::span<const uint8_t> record) {
  std::vector<FdRef> refs;
  EXPECT_TRUE(ScanFdRefs(record, &refs));
  std::vector<Ref<MemFile>> files;
  for (const FdRef& r : refs) {
    Ref<MemFile> f;
    int err = 0;
    EXPECT_EQ(MemFile::OpenPeer(static_cast<pid_t>(r.pid),
                                static_cast<int>(r.fd), r.id, r.size, false,
                                &f, &err),
              MemFile::Open::kOk)
        << err;
    files.push_back(std::move(f));
  }
  return files;
}

// ---- MemFile -----------------------------------------------------------------

TEST(MemFileTest, CreateSealOpenPeerRoundTrip) {
  const int64_t live = MemFile::LiveCountForTesting();
  const int fds = CountFds();
  {
    std::string err;
    Ref<MemFile> f = MemFile::Create(10000, /*populate=*/true, &err);
    ASSERT_TRUE(f) << err;
    ASSERT_NE(f->writable(), nullptr);
    Fill(f->writable(), f->size(), 1);
    ASSERT_TRUE(f->Seal(&err)) << err;
    EXPECT_EQ(f->writable(), nullptr);  // read-only once sealed
    EXPECT_TRUE(HasPattern(f->data(), 10000, 1));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f->data()) % 4096, 0u);
    // The kernel refuses writes and resizes now, for every holder.
    EXPECT_EQ(ftruncate(f->fd(), 100), -1);
    EXPECT_EQ(pwrite(f->fd(), "x", 1, 0), -1);
    EXPECT_EQ(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED,
                   f->fd(), 0),
              MAP_FAILED);

    Ref<MemFile> g;
    int e = 0;
    ASSERT_EQ(MemFile::OpenPeer(getpid(), f->fd(), f->id(), f->size(), false,
                                &g, &e),
              MemFile::Open::kOk)
        << e;
    EXPECT_NE(g->fd(), f->fd());  // its own descriptor
    EXPECT_EQ(g->id(), f->id());
    EXPECT_EQ(g->size(), 10000u);
    EXPECT_EQ(g->writable(), nullptr);
    EXPECT_TRUE(HasPattern(g->data(), 10000, 1));
    EXPECT_EQ(MemFile::LiveCountForTesting(), live + 2);
    // Outlives the creator's object: the kernel keeps the memfd.
    f = nullptr;
    EXPECT_TRUE(HasPattern(g->data(), 10000, 1));

    // An empty file works too.
    Ref<MemFile> empty = MemFile::Create(0, false, &err);
    ASSERT_TRUE(empty) << err;
    ASSERT_TRUE(empty->Seal(&err)) << err;
    Ref<MemFile> h;
    EXPECT_EQ(MemFile::OpenPeer(getpid(), empty->fd(), empty->id(), 0, true,
                                &h, &e),
              MemFile::Open::kOk);
  }
  EXPECT_EQ(MemFile::LiveCountForTesting(), live);
  EXPECT_EQ(CountFds(), fds);
}

TEST(MemFileTest, OpenPeerRefusesWhatIsNotASealedMemFileOfThatIdAndSize) {
  const int64_t live = MemFile::LiveCountForTesting();
  const int fds = CountFds();
  {
    std::string err;
    Ref<MemFile> f = SealedFile(std::vector<uint8_t>(5000, 9));
    ASSERT_TRUE(f);
    auto open = [](pid_t pid, int fd, uint64_t id, uint64_t size) {
      Ref<MemFile> out;
      int e = 0;
      const MemFile::Open r =
          MemFile::OpenPeer(pid, fd, id, size, false, &out, &e);
      EXPECT_EQ(r == MemFile::Open::kOk, static_cast<bool>(out));
      return r;
    };
    const pid_t me = getpid();
    ASSERT_EQ(open(me, f->fd(), f->id(), 5000), MemFile::Open::kOk);
    // Wrong size (the header and the file's length both say 5000), wrong id.
    EXPECT_EQ(open(me, f->fd(), f->id(), 5001), MemFile::Open::kRefused);
    EXPECT_EQ(open(me, f->fd(), f->id(), 4999), MemFile::Open::kRefused);
    EXPECT_EQ(open(me, f->fd(), f->id(), 0), MemFile::Open::kRefused);
    EXPECT_EQ(open(me, f->fd(), f->id() ^ 1, 5000), MemFile::Open::kRefused);
    // Nonsense arguments.
    EXPECT_EQ(open(0, f->fd(), f->id(), 5000), MemFile::Open::kRefused);
    EXPECT_EQ(open(-1, f->fd(), f->id(), 5000), MemFile::Open::kRefused);
    EXPECT_EQ(open(me, -1, f->id(), 5000), MemFile::Open::kRefused);
    EXPECT_EQ(open(me, f->fd(), f->id(), uint64_t{1} << 62),
              MemFile::Open::kRefused);

    // Not sealed yet (the header is not even written).
    Ref<MemFile> unsealed = MemFile::Create(5000, false, &err);
    ASSERT_TRUE(unsealed) << err;
    EXPECT_EQ(open(me, unsealed->fd(), unsealed->id(), 5000),
              MemFile::Open::kRefused);

    // A memfd with a valid header (copied from f) but sealed against
    // resizing only: its bytes could still change under a reader.
    const int raw = static_cast<int>(
        syscall(SYS_memfd_create, "test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    ASSERT_GE(raw, 0);
    std::vector<uint8_t> whole(MemFile::kHeaderBytes + 5000);
    ASSERT_EQ(pread(f->fd(), whole.data(), whole.size(), 0),
              static_cast<ssize_t>(whole.size()));
    ASSERT_EQ(pwrite(raw, whole.data(), whole.size(), 0),
              static_cast<ssize_t>(whole.size()));
    ASSERT_EQ(fcntl(raw, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    EXPECT_EQ(open(me, raw, f->id(), 5000), MemFile::Open::kRefused);
    // With the write seal as well it is as good as f (the refusal above
    // was the seal's).
    ASSERT_EQ(fcntl(raw, F_ADD_SEALS, F_SEAL_WRITE), 0);
    EXPECT_EQ(open(me, raw, f->id(), 5000), MemFile::Open::kOk);
    close(raw);

    // A regular file with the same bytes, a pipe, /dev/null.
    FILE* tmp = tmpfile();
    ASSERT_NE(tmp, nullptr);
    ASSERT_EQ(fwrite(whole.data(), 1, whole.size(), tmp), whole.size());
    fflush(tmp);
    EXPECT_EQ(open(me, fileno(tmp), f->id(), 5000), MemFile::Open::kRefused);
    fclose(tmp);
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    EXPECT_EQ(open(me, p[0], f->id(), 5000), MemFile::Open::kRefused);
    EXPECT_EQ(open(me, p[1], f->id(), 5000), MemFile::Open::kRefused);
    close(p[0]);
    close(p[1]);
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(null, 0);
    EXPECT_EQ(open(me, null, f->id(), 5000), MemFile::Open::kRefused);
    // A descriptor number that is not open (any more): the sender is gone.
    close(null);
    EXPECT_EQ(open(me, null, f->id(), 5000), MemFile::Open::kGone);
  }
  EXPECT_EQ(MemFile::LiveCountForTesting(), live);
  EXPECT_EQ(CountFds(), fds);
}

TEST(MemFileTest, OpenPeerReachesAnotherProcessesDescriptorUntilItExits) {
  const int64_t live = MemFile::LiveCountForTesting();
  int to_parent[2], to_child[2];
  ASSERT_EQ(pipe(to_parent), 0);
  ASSERT_EQ(pipe(to_child), 0);
  const pid_t child = Fork([&] {
    std::string err;
    Ref<MemFile> f = MemFile::Create(100000, false, &err);
    if (!f) _exit(2);
    Fill(f->writable(), f->size(), 5);
    if (!f->Seal(&err)) _exit(3);
    const FdRef r = RefTo(*f);
    if (write(to_parent[1], &r, sizeof r) != sizeof r) _exit(4);
    char c;
    if (read(to_child[0], &c, 1) != 1) _exit(5);  // until the parent is done
  });
  KillAtExit reap{child};
  FdRef r{};
  ASSERT_EQ(read(to_parent[0], &r, sizeof r), static_cast<ssize_t>(sizeof r));
  ASSERT_EQ(static_cast<pid_t>(r.pid), child);
  Ref<MemFile> f;
  int e = 0;
  ASSERT_EQ(MemFile::OpenPeer(child, static_cast<int>(r.fd), r.id, r.size,
                              false, &f, &e),
            MemFile::Open::kOk)
      << e;
  EXPECT_TRUE(HasPattern(f->data(), 100000, 5));
  EXPECT_EQ(MemFile::OpenPeer(child, static_cast<int>(r.fd), r.id ^ 1, r.size,
                              false, &f, &e),
            MemFile::Open::kRefused);
  // The child exits: its descriptor with it; what we opened lives on.
  ASSERT_EQ(write(to_child[1], "x", 1), 1);
  const int status = Wait(child);
  reap.pid = 0;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  Ref<MemFile> gone;
  EXPECT_EQ(MemFile::OpenPeer(child, static_cast<int>(r.fd), r.id, r.size,
                              false, &gone, &e),
            MemFile::Open::kGone);
  EXPECT_TRUE(HasPattern(f->data(), 100000, 5));
  f = nullptr;
  for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) {
    close(fd);
  }
  EXPECT_EQ(MemFile::LiveCountForTesting(), live);
}

TEST(MemFileTest, APublishedFileIsCheckedButStaysWritableForReuse) {
  const int64_t live = MemFile::LiveCountForTesting();
  {
    std::string err;
    Ref<MemFile> f = MemFile::Create(8192, false, &err);
    ASSERT_TRUE(f) << err;
    Fill(f->writable(), 5000, 3);
    ASSERT_TRUE(f->Publish(5000, &err)) << err;
    const uint64_t id1 = f->id();
    const int fd = f->fd();
    EXPECT_NE(f->writable(), nullptr);  // still its writer's
    EXPECT_TRUE(MemFile::Check(fd, id1, 5000, false, false));
    EXPECT_FALSE(MemFile::Check(fd, id1, 5000, false, /*exact=*/true));
    EXPECT_FALSE(MemFile::Check(fd, id1, 5000, /*sealed_write=*/true, false));
    EXPECT_FALSE(MemFile::Check(fd, id1 ^ 1, 5000, false, false));
    EXPECT_FALSE(MemFile::Check(fd, id1, 4999, false, false));
    EXPECT_FALSE(MemFile::Check(fd, id1, uint64_t{1} << 50, false, false));
    // Its size is fixed now; its bytes are not, so it is never mapped by
    // a reader.
    EXPECT_EQ(ftruncate(fd, 100), -1);
    Ref<MemFile> g;
    int e = 0;
    EXPECT_EQ(MemFile::OpenPeer(getpid(), fd, id1, 5000, false, &g, &e),
              MemFile::Open::kRefused);
    // Reused: a new id, and the old record's id no longer checks.
    Fill(f->writable(), 6000, 4);
    ASSERT_TRUE(f->Publish(6000, &err)) << err;
    EXPECT_NE(f->id(), id1);
    EXPECT_FALSE(MemFile::Check(fd, id1, 5000, false, false));
    EXPECT_TRUE(MemFile::Check(fd, f->id(), 6000, false, false));
    EXPECT_FALSE(f->Publish(8193, &err));  // more than the file holds
    // A sealed file passes the lighter check too.
    Ref<MemFile> sealed = SealedFile(std::vector<uint8_t>(10, 1));
    EXPECT_TRUE(MemFile::Check(sealed->fd(), sealed->id(), 10, false, false));
    EXPECT_TRUE(MemFile::Check(sealed->fd(), sealed->id(), 10, true, true));
    // Not a memfd at all.
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    EXPECT_FALSE(MemFile::Check(p[0], id1, 0, false, false));
    close(p[0]);
    close(p[1]);
  }
  EXPECT_EQ(MemFile::LiveCountForTesting(), live);
}

// ---- the flat form -----------------------------------------------------------

TEST(OutOfLineFlatFormTest, AlignedInlineBuffersAreViewsOfTheBody) {
  BufferLayout ints;
  ints.format = "i";
  ints.itemsize = 4;
  ints.shape = {3, 25};
  const std::vector<Ref<SharedBuffer>> buffers = {
      PatternBuffer(1, 1), PatternBuffer(300, 2, ints), PatternBuffer(0, 3),
      PatternBuffer(4097, 4), PatternBuffer(63, 5)};
  const Item item = MessageItem(buffers, 77, 9);
  FlattenOptions aligned;
  aligned.align = true;
  RecordBuffer head;
  std::span<const uint8_t> payload;
  ASSERT_TRUE(FlattenItem(item, &head, &payload, aligned));
  // A counting buffer counts the same bytes.
  RecordBuffer counted(RecordBuffer::Counting{});
  std::span<const uint8_t> payload2;
  ASSERT_TRUE(FlattenItem(item, &counted, &payload2, aligned));
  EXPECT_EQ(counted.size(), head.size());
  std::vector<uint8_t> record(head.data(), head.data() + head.size());
  record.insert(record.end(), payload.begin(), payload.end());

  // Read from memory, the buffers are copies, equal.
  FlatItem copied;
  bool oom = false;
  ASSERT_TRUE(UnflattenItem(record, &copied, &oom));
  ExpectSameMessage(item, copied);

  // Out of line (a kOutOfLine record names a memfd holding the record; the
  // receiver copies it out, the body): every buffer is a view of the body,
  // its bytes 64-aligned from the record's start, and the payload too.
  Ref<MemFile> file = SealedFile(record);
  ASSERT_TRUE(file);
  RecordBuffer ool;
  FlattenOutOfLine(RefTo(*file), &ool);
  ASSERT_EQ(ool.size(), kOutOfLineRecordBytes);
  EXPECT_EQ(OutOfLineBytes(ool.span()), record.size());
  EXPECT_EQ(OutOfLineBytes(record), 0u);
  std::vector<FdRef> refs;
  ASSERT_TRUE(ScanFdRefs(ool.span(), &refs));
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_TRUE(refs[0].whole_record);
  EXPECT_EQ(refs[0].id, file->id());
  EXPECT_EQ(refs[0].size, record.size());
  const Ref<SharedBuffer> body = SharedBuffer::Copy(record.data(), record.size());
  ASSERT_TRUE(body);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(body->data()) % 64, 0u);
  FlatItem f;
  ASSERT_TRUE(UnflattenItem(ool.span(), &f, &oom, {}, body));
  ExpectSameMessage(item, f);
  EXPECT_EQ(f.body.get(), body.get());
  const uint8_t* base = body->data();
  for (const Ref<SharedBuffer>& b : f.buffers) {
    EXPECT_EQ(b->root(), body.get());  // a view
    const size_t at = static_cast<size_t>(b->data() - base);
    EXPECT_EQ(at % 64, 0u) << at;
    EXPECT_LE(at + b->size(), record.size());
  }
  EXPECT_GE(f.payload.data(), base);
  EXPECT_EQ(f.payload.data() + f.payload.size(), base + record.size());
  // Without the body, or with one of another size, there is nothing to
  // read.
  FlatItem none;
  EXPECT_FALSE(UnflattenItem(ool.span(), &none, &oom));
  const Ref<MemFile> files[] = {file};
  EXPECT_FALSE(UnflattenItem(ool.span(), &none, &oom, files));
  const Ref<SharedBuffer> shorter =
      SharedBuffer::Copy(record.data(), record.size() - 1);
  EXPECT_FALSE(UnflattenItem(ool.span(), &none, &oom, {}, shorter));
  EXPECT_FALSE(oom);
}

TEST(OutOfLineFlatFormTest, BuffersInFilesGoByDescriptorAndComeBackAsViews) {
  const int fds = CountFds();
  const int64_t live = MemFile::LiveCountForTesting();
  {
    Ref<SharedBuffer> a = PatternFileBuffer(100000, 1);
    Ref<SharedBuffer> b = PatternFileBuffer(5000, 2);
    ASSERT_TRUE(a && b);
    ASSERT_NE(a->file(), nullptr);
    EXPECT_EQ(a->file_offset(), 0u);
    Ref<SharedBuffer> slice = SharedBuffer::Slice(a, 4096 + 10, 20000);
    ASSERT_EQ(slice->file(), a->file());
    EXPECT_EQ(slice->file_offset(), 4096u + 10);
    const Item item =
        MessageItem({a, PatternBuffer(700, 3), slice, b}, 10, 4);
    const int with_files = CountFds();  // a's and b's
    FlattenOptions by_fd;
    by_fd.by_fd = true;
    // Counting (no descriptors taken) and writing agree on the size.
    RecordBuffer counted(RecordBuffer::Counting{});
    std::span<const uint8_t> payload;
    ASSERT_TRUE(FlattenItem(item, &counted, &payload, by_fd));
    EXPECT_EQ(CountFds(), with_files);
    OwnedFds pass;
    by_fd.pass = &pass;
    RecordBuffer head;
    ASSERT_TRUE(FlattenItem(item, &head, &payload, by_fd));
    EXPECT_EQ(head.size(), counted.size());
    ASSERT_EQ(pass.size(), 3u);  // a, the slice of a, b
    EXPECT_EQ(CountFds(), with_files + 3);
    EXPECT_LT(head.size(), 1000u);  // the 125 KB stayed in their files
    std::vector<uint8_t> record(head.data(), head.data() + head.size());
    record.insert(record.end(), payload.begin(), payload.end());

    std::vector<FdRef> refs;
    ASSERT_TRUE(ScanFdRefs(record, &refs));
    ASSERT_EQ(refs.size(), 3u);
    const MemFile* expect[] = {a->file(), a->file(), b->file()};
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(refs[i].pid, static_cast<uint32_t>(getpid()));
      EXPECT_EQ(static_cast<int>(refs[i].fd), pass[i]);  // the passed copy
      EXPECT_EQ(refs[i].id, expect[i]->id());
      EXPECT_EQ(refs[i].size, expect[i]->size());
    }
    // Unflattened with the files opened: views, no copy.
    std::vector<Ref<MemFile>> files = OpenAll(record);
    ASSERT_EQ(files.size(), 3u);
    FlatItem f;
    bool oom = false;
    ASSERT_TRUE(UnflattenItem(record, &f, &oom, files));
    ExpectSameMessage(item, f);
    EXPECT_EQ(f.buffers[0]->data(), files[0]->data());
    EXPECT_EQ(f.buffers[0]->file(), files[0].get());
    EXPECT_EQ(f.buffers[1]->file(), nullptr);  // inline: a copy
    EXPECT_EQ(f.buffers[2]->data(), files[1]->data() + 4096 + 10);
    EXPECT_EQ(f.buffers[2]->size(), 20000u);
    EXPECT_EQ(f.buffers[3]->data(), files[2]->data());
    EXPECT_TRUE(HasPattern(f.buffers[3]->data(), 5000, 2));
    // Missing or misordered files: refused.
    FlatItem g;
    EXPECT_FALSE(UnflattenItem(record, &g, &oom));
    const Ref<MemFile> two[] = {files[0], files[1]};
    EXPECT_FALSE(UnflattenItem(record, &g, &oom, two));
    const Ref<MemFile> swapped[] = {files[2], files[1], files[0]};
    EXPECT_FALSE(UnflattenItem(record, &g, &oom, swapped));
    EXPECT_FALSE(oom);

    // Without by_fd the same item goes inline, whole.
    RecordBuffer whole;
    ASSERT_TRUE(FlattenItem(item, &whole));
    EXPECT_GT(whole.size(), 125000u);
    ASSERT_TRUE(ScanFdRefs(whole.span(), &refs));
    EXPECT_TRUE(refs.empty());
  }
  EXPECT_EQ(CountFds(), fds);  // OwnedFds closed the passed copies
  EXPECT_EQ(MemFile::LiveCountForTesting(), live);
}

TEST(OutOfLineFlatFormTest, MalformedDescriptorRecordsAreRefused) {
  Ref<MemFile> file = SealedFile(std::vector<uint8_t>(1000, 7));
  ASSERT_TRUE(file);
  const Ref<MemFile> files[] = {file};
  const FdRef ref = RefTo(*file);
  bool oom = false;
  // Parses (ScanFdRefs and UnflattenItem, with `files` and `body`) or not.
  auto parses = [&](std::span<const uint8_t> rec,
                    std::span<const Ref<MemFile>> with,
                    const Ref<SharedBuffer>& body = nullptr) {
    std::vector<FdRef> refs;
    const bool scanned = ScanFdRefs(rec, &refs);
    FlatItem f;
    const bool ok = UnflattenItem(rec, &f, &oom, with, body);
    EXPECT_FALSE(oom);
    if (ok) {
      EXPECT_TRUE(scanned);  // what reads, scans
    }
    return ok;
  };

  // where: 0 with npad < 64 parses; npad 64 does not; where 2 does not.
  Raw good0;
  good0.BufferHead(4).U8(0).Varint(63).Zeros(63).Bytes("abcd", 4);
  EXPECT_TRUE(parses(good0.span(), {}));
  Raw pad64;
  pad64.BufferHead(4).U8(0).Varint(64).Zeros(64).Bytes("abcd", 4);
  EXPECT_FALSE(parses(pad64.span(), {}));
  Raw short_pad;  // npad says more than the record has
  short_pad.BufferHead(4).U8(0).Varint(10).Zeros(3);
  EXPECT_FALSE(parses(short_pad.span(), {}));
  Raw where2;
  where2.BufferHead(4).U8(2).Ref(ref).Varint(0);
  EXPECT_FALSE(parses(where2.span(), files));
  std::vector<FdRef> scanned;
  EXPECT_FALSE(ScanFdRefs(where2.span(), &scanned));

  // where 1: [offset, offset + nbytes) must lie in the file.
  Raw good1;
  good1.BufferHead(4).U8(1).Ref(ref).Varint(996);
  EXPECT_TRUE(parses(good1.span(), files));
  Raw past;
  past.BufferHead(4).U8(1).Ref(ref).Varint(997);
  EXPECT_FALSE(parses(past.span(), files));
  Raw far;
  far.BufferHead(4).U8(1).Ref(ref).Varint(uint64_t{1} << 62);
  EXPECT_FALSE(parses(far.span(), files));
  Raw too_big;  // more bytes than the fdref's size
  too_big.BufferHead(1001).U8(1).Ref(ref).Varint(0);
  EXPECT_FALSE(parses(too_big.span(), files));
  // The fdref must name the file given: id and size.
  FdRef other_id = ref;
  other_id.id ^= 1;
  Raw bad_id;
  bad_id.BufferHead(4).U8(1).Ref(other_id).Varint(0);
  EXPECT_FALSE(parses(bad_id.span(), files));
  FdRef other_size = ref;
  other_size.size = 2000;  // the range fits the claim, not the file
  Raw bad_size;
  bad_size.BufferHead(4).U8(1).Ref(other_size).Varint(1500);
  EXPECT_FALSE(parses(bad_size.span(), files));
  // No file given for it; a truncated fdref; a trailing byte.
  EXPECT_FALSE(parses(good1.span(), {}));
  Raw cut;
  cut.BufferHead(4).U8(1).Bytes(good1.b.data() + 7, 20);
  EXPECT_FALSE(parses(cut.span(), files));
  Raw trailing = good1;
  trailing.U8(0);
  EXPECT_FALSE(parses(trailing.span(), files));

  // kOutOfLine: it names a memfd whose data is a record, every buffer
  // inline; the receiver parses its copy of that record (the body).
  auto ool_of = [](std::span<const uint8_t> body) {
    Raw r;
    RecordBuffer rb;
    FlattenOutOfLine(FdRef{static_cast<uint32_t>(getpid()), 3, 77,
                           body.size()},
                     &rb);
    r.Bytes(rb.data(), rb.size());
    return r;
  };
  auto body_of = [](std::span<const uint8_t> bytes) {
    return SharedBuffer::Copy(bytes.data(), bytes.size());
  };
  const Ref<SharedBuffer> inline_body = body_of(good0.span());
  EXPECT_TRUE(parses(ool_of(good0.span()).span(), {}, inline_body));
  Raw ool_trailing = ool_of(good0.span());
  ool_trailing.U8(0);
  EXPECT_FALSE(parses(ool_trailing.span(), {}, inline_body));
  Raw ool_cut = ool_of(good0.span());
  ool_cut.b.pop_back();
  EXPECT_FALSE(parses(ool_cut.span(), {}, inline_body));
  // The body must be as long as the fdref says.
  Raw ool_longer = ool_of(good0.span());
  ool_longer.b[kOutOfLineRecordBytes - 8] += 1;  // the size's low byte
  EXPECT_FALSE(parses(ool_longer.span(), {}, inline_body));
  // A by_fd buffer inside an out-of-line record: a view of its file, which
  // must be at hand.
  EXPECT_TRUE(parses(ool_of(good1.span()).span(), files, body_of(good1.span())));
  EXPECT_FALSE(parses(ool_of(good1.span()).span(), {}, body_of(good1.span())));
  // A kOutOfLine record inside one: refused.
  const Raw inner = ool_of(good0.span());
  EXPECT_FALSE(parses(ool_of(inner.span()).span(), files, body_of(inner.span())));
  // A body that is not a record (junk), or an empty one.
  const std::vector<uint8_t> junk(100, 0xee);
  EXPECT_FALSE(parses(ool_of(junk).span(), {}, body_of(junk)));
  EXPECT_FALSE(parses(ool_of({}).span(), {}, body_of({})));
  // A body given to a record that is not kOutOfLine is not read.
  EXPECT_TRUE(parses(good0.span(), {}, body_of(junk)));

  // A message of two buffers by descriptor scans both, in order, and needs
  // both files.
  Raw msg;
  msg.U8(static_cast<uint8_t>(FlatKind::kMessage)).Varint(2);
  msg.Varint(1).U8('B').Varint(1).Varint(0).Varint(4).U8(1).Ref(ref).Varint(0);
  msg.Varint(1).U8('B').Varint(1).Varint(0).Varint(2).U8(0).Varint(0).Bytes(
      "xy", 2);
  msg.Varint(1).U8('B').Varint(1).Varint(0).Varint(8).U8(1).Ref(ref).Varint(
      992);
  msg.U8(static_cast<uint8_t>(Tag::kNone));  // the payload
  // (nrefs says 2, three buffers follow: the third's bytes are payload.)
  EXPECT_TRUE(ScanFdRefs(msg.span(), &scanned));
  EXPECT_EQ(scanned.size(), 1u);
  msg.b[1] = 3;
  ASSERT_TRUE(ScanFdRefs(msg.span(), &scanned));
  EXPECT_EQ(scanned.size(), 2u);
  EXPECT_FALSE(parses(msg.span(), files));  // one file for two fdrefs
  const Ref<MemFile> twice[] = {file, file};
  EXPECT_TRUE(parses(msg.span(), twice));
}

// ---- ProcessChannel ----------------------------------------------------------

// Receives one record and parses it with the files (and the out-of-line
// body) it named.
ShmStatus RecvItem(ProcessChannel& ch, RecordBuffer* rb, FlatItem* f) {
  const ShmStatus s = ch.Recv(rb, Soon(), false);
  if (s != ShmStatus::kOk) return s;
  bool oom = false;
  if (!UnflattenItem(rb->span(), f, &oom, rb->files, rb->body)) {
    return ShmStatus::kCorrupt;
  }
  return s;
}

// The values of the large-value tests: an 8 MiB message of four buffers
// and a payload, and a 64 MiB array of doubles.
Item EightMiB(uint64_t seed) {
  BufferLayout doubles;
  doubles.format = "<d";
  doubles.itemsize = 8;
  doubles.shape = {1024, 512};
  return MessageItem({PatternBuffer(4 * kMiB, seed, doubles),
                      PatternBuffer(3 * kMiB + 13, seed + 1),
                      PatternBuffer(5, seed + 2),
                      PatternBuffer(kMiB - 4096, seed + 3)},
                     4000, seed);
}
Ref<SharedBuffer> SixtyFourMiB(uint64_t seed) {
  BufferLayout doubles;
  doubles.format = "d";
  doubles.itemsize = 8;
  doubles.shape = {2048, 4096};
  return PatternBuffer(64 * kMiB, seed, doubles);
}

// Checks what arrived against the pattern (no copy of the sent item at
// hand: a forked child checks it this way too). Returns a failure reason.
std::string CheckEightMiB(const FlatItem& f, uint64_t seed) {
  if (f.is_buffer || f.buffers.size() != 4) return "not 4 buffers";
  const size_t sizes[] = {4 * kMiB, 3 * kMiB + 13, 5, kMiB - 4096};
  for (size_t i = 0; i < 4; ++i) {
    const SharedBuffer& b = *f.buffers[i];
    if (b.size() != sizes[i]) return "size of buffer " + std::to_string(i);
    if (!HasPattern(b.data(), b.size(), seed + i)) {
      return "bytes of buffer " + std::to_string(i);
    }
    if (f.body && b.root() != f.body.get()) return "not a view of the body";
    if (reinterpret_cast<uintptr_t>(b.data()) % 64 != 0) return "unaligned";
  }
  if (f.buffers[0]->layout().format != "<d" ||
      f.buffers[0]->shape() != std::vector<int64_t>{1024, 512}) {
    return "layout";
  }
  // The payload: a tuple of 6, the seed, 4000 bytes of pattern, 4 refs.
  if (f.payload.size() < 4000 + 10 || f.payload[0] != uint8_t(Tag::kTuple)) {
    return "payload";
  }
  return "";
}
std::string CheckSixtyFourMiB(const FlatItem& f, uint64_t seed) {
  if (!f.is_buffer || f.buffers.size() != 1) return "not a buffer";
  const SharedBuffer& b = *f.buffers[0];
  if (b.size() != 64 * kMiB) return "size";
  if (b.shape() != std::vector<int64_t>{2048, 4096} ||
      b.layout().format != "d") {
    return "layout";
  }
  if (!f.body || b.root() != f.body.get()) return "not a view of the body";
  if (!HasPattern(b.data(), b.size(), seed)) return "bytes";
  return "";
}

TEST(OutOfLineChannelTest, LargeValuesGoOutOfLineAndComeBackEqual) {
  const int fds = CountFds();
  const int64_t live = MemFile::LiveCountForTesting();
  Ref<ProcessChannel> ch = Make(kMiB);
  const int with_channel = CountFds();
  {
    const Item eight = EightMiB(10);
    const Item sixty_four = BufferItem(SixtyFourMiB(20));
    std::string err;
    OutRecord out8, out64;
    ASSERT_TRUE(ch->Prepare(eight, &out8, &err)) << err;
    ASSERT_TRUE(ch->Prepare(sixty_four, &out64, &err)) << err;
    for (const OutRecord* o : {&out8, &out64}) {
      EXPECT_EQ(o->size(), kOutOfLineRecordBytes);
      EXPECT_EQ(o->head.data()[0], static_cast<uint8_t>(FlatKind::kOutOfLine));
      EXPECT_TRUE(o->tail.empty());
      EXPECT_TRUE(o->fds.empty());
      EXPECT_TRUE(o->file);
    }
    EXPECT_GT(OutOfLineBytes(out8.head.span()), 8 * kMiB);
    EXPECT_GT(OutOfLineBytes(out64.head.span()), 64 * kMiB);
    EXPECT_EQ(MemFile::LiveCountForTesting(), live + 2);
    EXPECT_EQ(CountFds(), with_channel + 2);
    ASSERT_EQ(ch->Send(out8, Soon(), false), ShmStatus::kOk);
    EXPECT_FALSE(out8.file);  // the channel holds it now
    // A second value waits for the first to be taken (the accounting), so
    // take it, then send the second.
    RecordBuffer rb;
    {
      FlatItem f;
      ASSERT_EQ(RecvItem(*ch, &rb, &f), ShmStatus::kOk);
      EXPECT_EQ(rb.size(), kOutOfLineRecordBytes);
      EXPECT_TRUE(rb.files.empty());
      ASSERT_TRUE(rb.body);
      EXPECT_EQ(rb.body->size(), OutOfLineBytes(out8.head.span()));
      ExpectSameMessage(eight, f);
      EXPECT_EQ(CheckEightMiB(f, 10), "");
      EXPECT_EQ(f.body.get(), rb.body.get());
    }
    ASSERT_EQ(ch->Send(out64, Soon(), false), ShmStatus::kOk);
    {
      FlatItem f;
      ASSERT_EQ(RecvItem(*ch, &rb, &f), ShmStatus::kOk);
      EXPECT_EQ(CheckSixtyFourMiB(f, 20), "");
      EXPECT_EQ(f.buffers[0]->data(), f.body->data() + 64);
    }
    rb.clear();
    // At its next call past the head the sender keeps at most kPoolFiles
    // of its files for the next values, and nothing else.
    RecordBuffer none;
    EXPECT_EQ(ch->TryRecv(&none), ShmStatus::kEmpty);
    EXPECT_LE(CountFds(), with_channel + int{ProcessChannel::kPoolFiles});
    EXPECT_LE(MemFile::LiveCountForTesting(),
              live + int64_t{ProcessChannel::kPoolFiles});
    EXPECT_EQ(Peer::OolBytes(*ch), 0u);
    EXPECT_EQ(ch->size(), 0u);
    // Many more large values: the files are reused, the count stays.
    const int after_two = CountFds();
    for (uint64_t i = 0; i < 20; ++i) {
      OutRecord o;
      ASSERT_TRUE(ch->Prepare(BufferItem(PatternBuffer(kMiB + i * 4096, 100 + i)),
                              &o, &err))
          << err;
      ASSERT_EQ(o.size(), kOutOfLineRecordBytes);
      ASSERT_EQ(ch->Send(o, Soon(), false), ShmStatus::kOk);
      FlatItem f;
      ASSERT_EQ(RecvItem(*ch, &rb, &f), ShmStatus::kOk);
      ASSERT_TRUE(HasPattern(f.buffers[0]->data(), kMiB + i * 4096, 100 + i));
      EXPECT_LE(CountFds(), after_two + 1);
    }
    rb.clear();
    EXPECT_EQ(ch->TryRecv(&none), ShmStatus::kEmpty);
    EXPECT_LE(CountFds(), with_channel + int{ProcessChannel::kPoolFiles});
  }
  ch = nullptr;  // closes the pooled files
  EXPECT_EQ(CountFds(), fds);
  EXPECT_EQ(MemFile::LiveCountForTesting(), live);
}

TEST(OutOfLineChannelTest, SmallValuesStayInlineAndFileBuffersGoByDescriptor) {
  Ref<ProcessChannel> ch = Make(kMiB);
  const int with_channel = CountFds();
  std::string err;
  OutRecord out;
  // Inline up to kInlineMax.
  const Item small = BufferItem(PatternBuffer(100000, 1));
  ASSERT_TRUE(ch->Prepare(small, &out, &err)) << err;
  EXPECT_GT(out.size(), 100000u);
  EXPECT_TRUE(out.fds.empty());
  ASSERT_EQ(ch->Send(out, Soon(), false), ShmStatus::kOk);
  // A buffer in a file goes by descriptor, in a small inline record.
  Ref<SharedBuffer> in_file = PatternFileBuffer(2 * kMiB, 2);
  auto by_fd = std::make_unique<Item>(
      MessageItem({in_file, PatternBuffer(10, 3)}, 5, 4));
  ASSERT_TRUE(ch->Prepare(*by_fd, &out, &err)) << err;
  EXPECT_LT(out.size(), 500u);
  EXPECT_EQ(out.fds.size(), 1u);
  ASSERT_EQ(ch->Send(out, Soon(), false), ShmStatus::kOk);
  EXPECT_EQ(Peer::OolBytes(*ch), 0u);  // nothing out of line
  RecordBuffer rb;
  FlatItem f;
  ASSERT_EQ(RecvItem(*ch, &rb, &f), ShmStatus::kOk);
  EXPECT_TRUE(rb.files.empty());
  ASSERT_TRUE(f.is_buffer);
  EXPECT_TRUE(HasPattern(f.buffers[0]->data(), 100000, 1));
  EXPECT_EQ(f.buffers[0]->file(), nullptr);  // a copy out of the ring
  FlatItem g;
  ASSERT_EQ(RecvItem(*ch, &rb, &g), ShmStatus::kOk);
  ASSERT_EQ(rb.files.size(), 1u);
  ExpectSameMessage(*by_fd, g);
  EXPECT_EQ(g.buffers[0]->data(), rb.files[0]->data());  // zero-copy
  EXPECT_EQ(g.buffers[0]->file(), rb.files[0].get());
  // The sender's copy goes at the next call; the buffer's own file stays.
  RecordBuffer none;
  EXPECT_EQ(ch->TryRecv(&none), ShmStatus::kEmpty);
  EXPECT_EQ(CountFds(), with_channel + 2);  // in_file's, rb.files[0]'s
  g = FlatItem();
  rb.clear();
  in_file = nullptr;
  by_fd.reset();
  EXPECT_EQ(CountFds(), with_channel);
}

TEST(OutOfLineChannelTest, LargeValuesCrossAFork) {
  Ref<ProcessChannel> ch = Make(kMiB);
  Ref<ProcessChannel> back = Make(4096);
  const int with_channels = CountFds();
  const pid_t child = Fork([&] {
    RecordBuffer rb;
    for (int k = 0; k < 3; ++k) {
      FlatItem f;
      const ShmStatus s = RecvItem(*ch, &rb, &f);
      std::string why;
      if (s != ShmStatus::kOk) {
        why = "status " + std::to_string(static_cast<int>(s));
      } else if (k == 0) {
        why = CheckEightMiB(f, 30);
      } else if (k == 1) {
        why = CheckSixtyFourMiB(f, 40);
      } else if (!f.is_buffer || rb.files.size() != 1 ||
                 f.buffers[0]->data() != rb.files[0]->data() ||
                 !HasPattern(f.buffers[0]->data(), 3 * kMiB, 50)) {
        why = "the buffer by descriptor";
      }
      if (!why.empty()) {
        std::fprintf(stderr, "child, value %d: %s\n", k, why.c_str());
        _exit(10 + k);
      }
    }
    // Report back that all arrived (the sender keeps its files till then).
    if (back->Send(std::vector<uint8_t>{1}, Soon(), false) != ShmStatus::kOk) {
      _exit(20);
    }
  });
  KillAtExit reap{child};
  std::string err;
  {
    OutRecord out;
    ASSERT_TRUE(ch->Prepare(EightMiB(30), &out, &err)) << err;
    ASSERT_EQ(out.size(), kOutOfLineRecordBytes);
    ASSERT_EQ(ch->Send(out, Soon(), false), ShmStatus::kOk);
    ASSERT_TRUE(ch->Prepare(BufferItem(SixtyFourMiB(40)), &out, &err)) << err;
    ASSERT_EQ(out.size(), kOutOfLineRecordBytes);
    ASSERT_EQ(ch->Send(out, Soon(), false), ShmStatus::kOk);  // waits
    Ref<SharedBuffer> in_file = PatternFileBuffer(3 * kMiB, 50);
    ASSERT_TRUE(ch->Prepare(BufferItem(in_file), &out, &err)) << err;
    ASSERT_LT(out.size(), 200u);
    ASSERT_EQ(ch->Send(out, Soon(), false), ShmStatus::kOk);
  }
  RecordBuffer ack;
  ASSERT_EQ(back->Recv(&ack, Soon(), false), ShmStatus::kOk);
  const int status = Wait(child);
  reap.pid = 0;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // The head passed every record: the next call closes what we held.
  RecordBuffer none;
  EXPECT_EQ(ch->TryRecv(&none), ShmStatus::kEmpty);
  EXPECT_LE(CountFds(), with_channels + int{ProcessChannel::kPoolFiles});
  EXPECT_EQ(Peer::OolBytes(*ch), 0u);
}

TEST(OutOfLineChannelTest, AChannelDestroyedWithValuesQueuedClosesTheirFiles) {
  const int fds = CountFds();
  const int64_t live = MemFile::LiveCountForTesting();
  {
    Ref<ProcessChannel> ch = Make(64 * kMiB);
    std::string err;
    for (uint64_t seed = 0; seed < 3; ++seed) {
      OutRecord out;
      ASSERT_TRUE(ch->Prepare(BufferItem(PatternBuffer(kMiB, seed)), &out,
                              &err))
          << err;
      ASSERT_EQ(out.size(), kOutOfLineRecordBytes);
      ASSERT_EQ(ch->TrySendNoLockWait(out), ShmStatus::kOk);
    }
    EXPECT_EQ(ch->size(), 3u);
    EXPECT_EQ(CountFds(), fds + 1 + 3);  // the segment, three memfds
    EXPECT_EQ(MemFile::LiveCountForTesting(), live + 3);
  }
  EXPECT_EQ(CountFds(), fds);
  EXPECT_EQ(MemFile::LiveCountForTesting(), live);
}

TEST(OutOfLineChannelTest, OutOfLineBytesCountAgainstTheCapacity) {
  Ref<ProcessChannel> ch = Make(kMiB);
  std::string err;
  // An empty channel admits one value of any size.
  OutRecord first, second;
  ASSERT_TRUE(ch->Prepare(BufferItem(PatternBuffer(8 * kMiB, 1)), &first, &err))
      << err;
  ASSERT_TRUE(
      ch->Prepare(BufferItem(PatternBuffer(8 * kMiB, 2)), &second, &err))
      << err;
  const uint64_t w1 = OutOfLineBytes(first.head.span());
  const uint64_t w2 = OutOfLineBytes(second.head.span());
  EXPECT_GT(w1, 8 * kMiB);
  ASSERT_EQ(ch->TrySendNoLockWait(first), ShmStatus::kOk);
  EXPECT_EQ(Peer::OolBytes(*ch), w1);
  // Not a second one, nor an inline record, while it is queued.
  EXPECT_EQ(ch->TrySendNoLockWait(second), ShmStatus::kFull);
  EXPECT_TRUE(second.file);  // still the caller's
  EXPECT_EQ(ch->Send(second, In(std::chrono::milliseconds(20)), false),
            ShmStatus::kFull);
  EXPECT_EQ(ch->TrySend(std::vector<uint8_t>{4}), ShmStatus::kFull);
  EXPECT_EQ(ch->size(), 1u);
  RecordBuffer rb;
  FlatItem f;
  ASSERT_EQ(RecvItem(*ch, &rb, &f), ShmStatus::kOk);
  EXPECT_TRUE(HasPattern(f.buffers[0]->data(), 8 * kMiB, 1));
  EXPECT_EQ(Peer::OolBytes(*ch), 0u);
  // Now it fits.
  ASSERT_EQ(ch->TrySendNoLockWait(second), ShmStatus::kOk);
  EXPECT_EQ(Peer::OolBytes(*ch), w2);
  FlatItem g;
  ASSERT_EQ(RecvItem(*ch, &rb, &g), ShmStatus::kOk);
  EXPECT_TRUE(HasPattern(g.buffers[0]->data(), 8 * kMiB, 2));
  EXPECT_EQ(Peer::OolBytes(*ch), 0u);

  // Values smaller than the ring (but above kInlineMax) share it: two of
  // 400 KiB fit a 1 MiB ring, a third does not.
  OutRecord v[3];
  for (uint64_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(ch->Prepare(BufferItem(PatternBuffer(400 * 1024, 10 + i)),
                            &v[i], &err))
        << err;
    ASSERT_EQ(v[i].size(), kOutOfLineRecordBytes);
  }
  ASSERT_EQ(ch->TrySendNoLockWait(v[0]), ShmStatus::kOk);
  ASSERT_EQ(ch->TrySendNoLockWait(v[1]), ShmStatus::kOk);
  EXPECT_EQ(ch->TrySendNoLockWait(v[2]), ShmStatus::kFull);
  EXPECT_EQ(Peer::OolBytes(*ch), OutOfLineBytes(v[0].head.span()) +
                                     OutOfLineBytes(v[1].head.span()));
  // A small inline record still fits beside them.
  EXPECT_EQ(ch->TrySend(std::vector<uint8_t>{4}), ShmStatus::kOk);
  for (uint64_t i = 0; i < 2; ++i) {
    FlatItem h;
    ASSERT_EQ(RecvItem(*ch, &rb, &h), ShmStatus::kOk);
    EXPECT_TRUE(HasPattern(h.buffers[0]->data(), 400 * 1024, 10 + i));
  }
  ASSERT_EQ(ch->TrySendNoLockWait(v[2]), ShmStatus::kOk);
  ASSERT_EQ(ch->TryRecv(&rb), ShmStatus::kOk);  // the inline byte
  FlatItem h;
  ASSERT_EQ(RecvItem(*ch, &rb, &h), ShmStatus::kOk);
  EXPECT_TRUE(HasPattern(h.buffers[0]->data(), 400 * 1024, 12));
  EXPECT_EQ(Peer::OolBytes(*ch), 0u);
  EXPECT_EQ(ch->size(), 0u);
}

TEST(OutOfLineChannelTest, ARecordWhoseFileIsGoneIsLostAndConsumed) {
  // (Each lost record's claimed size fits the capacity beside the next.)
  Ref<ProcessChannel> ch = Make(4096);
  RecordBuffer next;
  ASSERT_TRUE(FlattenItem(Item::Int(7), &next));
  auto expect_lost_then_next = [&](std::span<const uint8_t> record) {
    ASSERT_EQ(ch->Send(record, Soon(), false), ShmStatus::kOk);
    ASSERT_EQ(ch->Send(next.span(), Soon(), false), ShmStatus::kOk);
    EXPECT_EQ(Peer::OolBytes(*ch), OutOfLineBytes(record));
    RecordBuffer rb;
    EXPECT_EQ(ch->Recv(&rb, Soon(), false), ShmStatus::kLost);
    EXPECT_TRUE(rb.files.empty());
    EXPECT_EQ(ch->size(), 1u);  // consumed
    EXPECT_EQ(Peer::OolBytes(*ch), 0u);
    FlatItem f;
    ASSERT_EQ(RecvItem(*ch, &rb, &f), ShmStatus::kOk);
    EXPECT_EQ(f.scalar.AsInt(), 7);
  };
  // A descriptor number this process does not hold (any more).
  const int closed = dup(STDERR_FILENO);
  ASSERT_GE(closed, 0);
  close(closed);
  RecordBuffer ool;
  FlattenOutOfLine(FdRef{static_cast<uint32_t>(getpid()),
                         static_cast<uint32_t>(closed), 1234, 1000},
                   &ool);
  expect_lost_then_next(ool.span());
  // A process that has exited.
  const pid_t dead = Fork([] {});
  Wait(dead);
  ool.clear();
  FlattenOutOfLine(FdRef{static_cast<uint32_t>(dead), 3, 1234, 1000}, &ool);
  expect_lost_then_next(ool.span());
  // A live file, but not the one named (another id): refused, so lost.
  Ref<MemFile> file = SealedFile(std::vector<uint8_t>(100, 1));
  FdRef wrong = RefTo(*file);
  wrong.id ^= 1;
  ool.clear();
  FlattenOutOfLine(wrong, &ool);
  expect_lost_then_next(ool.span());
  // A buffer by descriptor in an inline record, its file gone.
  Raw by_fd;
  by_fd.BufferHead(4)
      .U8(1)
      .Ref(FdRef{static_cast<uint32_t>(getpid()),
                 static_cast<uint32_t>(closed), 1, 100})
      .Varint(0);
  expect_lost_then_next(by_fd.span());
  // The record as sent names the live file: received, its data copied.
  ool.clear();
  FlattenOutOfLine(RefTo(*file), &ool);
  ASSERT_EQ(ch->Send(ool.span(), Soon(), false), ShmStatus::kOk);
  RecordBuffer rb;
  ASSERT_EQ(ch->Recv(&rb, Soon(), false), ShmStatus::kOk);
  EXPECT_TRUE(rb.files.empty());
  ASSERT_TRUE(rb.body);
  EXPECT_EQ(rb.body->size(), 100u);
  EXPECT_EQ(rb.body->data()[99], 1);
}

// A record naming another process's descriptor of a named FIFO that has
// no writer: opening /proc/PID/fd/N without O_NONBLOCK would wait for a
// writer forever, inside Recv, holding the segment's mutex, and every
// process of the channel would be stuck. The record is refused (kLost) at
// once.
TEST(OutOfLineChannelTest, ARecordNamingAFifoDoesNotBlockTheReceiver) {
  char dir[] = "/tmp/xchannels-fifo-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string fifo = std::string(dir) + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  const pid_t holder = Fork([&] {
    const int fd = open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
    if (write(report[1], &fd, sizeof fd) != sizeof fd) _exit(2);
    for (;;) pause();
  });
  KillAtExit kill_holder{holder};
  int fd = -1;
  ASSERT_EQ(read(report[0], &fd, sizeof fd), static_cast<ssize_t>(sizeof fd));
  close(report[0]);
  close(report[1]);
  ASSERT_GE(fd, 0);
  Ref<ProcessChannel> ch = Make(4096);
  RecordBuffer ool;
  FlattenOutOfLine(FdRef{static_cast<uint32_t>(holder),
                         static_cast<uint32_t>(fd), 1, 100},
                   &ool);
  ASSERT_EQ(ch->Send(ool.span(), Soon(), false), ShmStatus::kOk);
  const pid_t receiver = Fork([&] {
    RecordBuffer rb;
    _exit(ch->Recv(&rb, In(std::chrono::milliseconds(2000)), false) ==
                  ShmStatus::kLost
              ? 0
              : 2);
  });
  KillAtExit kill_receiver{receiver};
  int status = -1;
  const auto t0 = Clock::now();
  while (waitpid(receiver, &status, WNOHANG) == 0 &&
         Clock::now() - t0 < std::chrono::seconds(5)) {
    usleep(10000);
  }
  if (status != -1) kill_receiver.pid = 0;  // reaped
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the receiver is stuck opening the FIFO, holding the mutex";
  // Meanwhile nobody else gets the mutex either.
  EXPECT_EQ(ch->Send(std::vector<uint8_t>{1}, In(std::chrono::milliseconds(10)),
                     false),
            ShmStatus::kOk);
  unlink(fifo.c_str());
  rmdir(dir);
}

// ---- a value larger than 4 GiB, never written ---------------------------------

// Resident and peak memory of this process, bytes.
size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t total = 0, resident = 0;
  statm >> total >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}
size_t PeakBytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<size_t>(u.ru_maxrss) * 1024;
}

// A memfd of `size` data bytes, sparse (never written but for `head` at
// its start), sealed; or nullptr with the reason to skip in *skip.
Ref<MemFile> SparseFile(uint64_t size, std::span<const uint8_t> head,
                        std::string* skip) {
  rlimit fsize{};
  getrlimit(RLIMIT_FSIZE, &fsize);
  if (fsize.rlim_cur != RLIM_INFINITY &&
      fsize.rlim_cur < size + MemFile::kHeaderBytes) {
    *skip = "RLIMIT_FSIZE (" + std::to_string(fsize.rlim_cur) +
            " bytes) refuses a memfd of " + std::to_string(size) + " bytes";
    return nullptr;
  }
  std::string err;
  Ref<MemFile> file = MemFile::Create(size, /*populate=*/false, &err);
  EXPECT_TRUE(file) << err;
  if (!file) return nullptr;
  if (!head.empty()) std::memcpy(file->writable(), head.data(), head.size());
  EXPECT_TRUE(file->Seal(&err)) << err;
  return file;
}

TEST(OutOfLineChannelTest, AFiveGiBBufferTravelsByDescriptorUnallocated) {
  // The > 4 GiB path with no copy: a buffer whose bytes live in a sealed
  // memfd goes by descriptor (where 1), and comes back as a view of the
  // receiver's mapping. The memfd is sparse: 5 GiB that nobody allocates.
  // (A kOutOfLine record is copied out by its receiver: not this path.)
  constexpr uint64_t kValue = 5 * uint64_t{kGiB};
  constexpr uint64_t kAt = 64;  // where in the file the value starts
  std::string skip;
  const std::vector<uint8_t> marks(kAt, 0xab);
  const size_t resident0 = ResidentBytes();
  const size_t peak0 = PeakBytes();
  Ref<MemFile> file = SparseFile(kAt + kValue + 3, marks, &skip);
  if (!file && !skip.empty()) GTEST_SKIP() << skip;
  ASSERT_TRUE(file);
  Raw record;
  record.BufferHead(kValue).U8(1).Ref(RefTo(*file)).Varint(kAt);
  Ref<ProcessChannel> ch = Make(4096);
  ASSERT_EQ(ch->Send(record.span(), Soon(), false), ShmStatus::kOk);
  EXPECT_EQ(Peer::OolBytes(*ch), 0u);  // not an out-of-line record
  RecordBuffer rb;
  FlatItem f;
  ASSERT_EQ(RecvItem(*ch, &rb, &f), ShmStatus::kOk);
  ASSERT_EQ(rb.files.size(), 1u);
  EXPECT_FALSE(rb.body);
  ASSERT_TRUE(f.is_buffer);
  const SharedBuffer& b = *f.buffers[0];
  ASSERT_EQ(b.size(), kValue);
  EXPECT_EQ(b.shape(), std::vector<int64_t>{static_cast<int64_t>(kValue)});
  EXPECT_EQ(b.file(), rb.files[0].get());
  EXPECT_EQ(b.data(), rb.files[0]->data() + kAt);
  EXPECT_EQ(b.file_offset(), kAt);
  EXPECT_EQ(b.data()[-1], 0xab);  // the marks before it: the right file
  EXPECT_EQ(b.data()[0], 0);
  EXPECT_EQ(b.data()[kValue / 2], 0);
  EXPECT_EQ(b.data()[kValue - 1], 0);
  // It goes on by descriptor again, from the receiver, without a copy.
  OutRecord again;
  std::string err;
  ASSERT_TRUE(ch->Prepare(BufferItem(f.buffers[0]), &again, &err)) << err;
  EXPECT_LT(again.size(), 200u);
  EXPECT_EQ(again.fds.size(), 1u);
  EXPECT_FALSE(again.file);
  ASSERT_EQ(ch->Send(again, Soon(), false), ShmStatus::kOk);
  RecordBuffer rb2;
  FlatItem g;
  ASSERT_EQ(RecvItem(*ch, &rb2, &g), ShmStatus::kOk);
  ASSERT_EQ(g.buffers[0]->size(), kValue);
  EXPECT_EQ(g.buffers[0]->data()[-1], 0xab);
  EXPECT_EQ(g.buffers[0]->data()[kValue - 1], 0);
  const size_t resident1 = ResidentBytes();
  const size_t peak1 = PeakBytes();
  EXPECT_LT(resident1 - std::min(resident1, resident0), 64 * kMiB)
      << resident0 << " -> " << resident1;
  EXPECT_LT(peak1 - std::min(peak1, peak0), 64 * kMiB)
      << peak0 << " -> " << peak1;
}

// A kOutOfLine record naming a (sparse) memfd larger than the receiver can
// allocate: left at the head, it would stop every reader for as long as
// the sender holds the file (and its weight keep every put out). It is
// consumed and reported (kNoMemory).
TEST(OutOfLineChannelTest, AnOutOfLineRecordTooLargeToCopyIsNotLeftAtTheHead) {
  std::string skip;
  RecordBuffer small;
  ASSERT_TRUE(FlattenItem(Item::Int(7), &small));
  // Twice the machine's memory: never allocated (the receiver does not try
  // more than the memory there is), and mappable under TSan too.
  const uint64_t ram = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                       static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  Ref<MemFile> file = SparseFile(2 * ram, small.span(), &skip);
  if (!file && !skip.empty()) GTEST_SKIP() << skip;
  ASSERT_TRUE(file);
  RecordBuffer ool;
  FlattenOutOfLine(RefTo(*file), &ool);
  Ref<ProcessChannel> ch = Make(4096);
  ASSERT_EQ(ch->Send(ool.span(), Soon(), false), ShmStatus::kOk);
  RecordBuffer rb;
  const ShmStatus first = ch->Recv(&rb, Soon(), false);
  EXPECT_EQ(first, ShmStatus::kNoMemory);
  const ShmStatus second = ch->Recv(&rb, In(std::chrono::milliseconds(100)),
                                    false);
  EXPECT_EQ(second, ShmStatus::kEmpty)
      << "the record is still at the head (first Recv: "
      << static_cast<int>(first) << ", second: " << static_cast<int>(second)
      << ")";
  EXPECT_EQ(ch->TrySend(small.span()), ShmStatus::kOk);
}

// Out-of-line values are written into files the sending handle reuses; a
// forked child has copies of the same files (the same memfds) in its pool
// and must forget them (ForgetSent, what the Python binding does at fork)
// before it sends: then the child's value and the parent's both arrive.
void ForkedSendersShareAChannel(bool forget_in_child, int* lost, int* ok) {
  Ref<ProcessChannel> ch = Make(64 * kMiB);
  std::string err;
  RecordBuffer rb;
  {
    // One large value sent and taken: its file is in the parent's pool.
    OutRecord o;
    ASSERT_TRUE(ch->Prepare(BufferItem(PatternBuffer(2 * kMiB, 1)), &o, &err))
        << err;
    ASSERT_EQ(ch->Send(o, Soon(), false), ShmStatus::kOk);
    FlatItem f;
    ASSERT_EQ(RecvItem(*ch, &rb, &f), ShmStatus::kOk);
    RecordBuffer none;
    ASSERT_EQ(ch->TryRecv(&none), ShmStatus::kEmpty);  // reclaims
  }
  int sent[2], go[2];
  ASSERT_EQ(pipe(sent), 0);
  ASSERT_EQ(pipe(go), 0);
  const pid_t child = Fork([&] {
    if (forget_in_child) ch->ForgetSent();
    OutRecord o;
    std::string e;
    if (!ch->Prepare(BufferItem(PatternBuffer(2 * kMiB, 2)), &o, &e)) _exit(2);
    if (ch->Send(o, Soon(), false) != ShmStatus::kOk) _exit(3);
    if (write(sent[1], "s", 1) != 1) _exit(4);
    char c;
    if (read(go[0], &c, 1) != 1) _exit(5);  // holds its file till then
  });
  KillAtExit reap{child};
  char c;
  ASSERT_EQ(read(sent[0], &c, 1), 1);
  OutRecord o;
  ASSERT_TRUE(ch->Prepare(BufferItem(PatternBuffer(2 * kMiB, 3)), &o, &err))
      << err;
  ASSERT_EQ(ch->Send(o, Soon(), false), ShmStatus::kOk);
  *lost = *ok = 0;
  for (uint64_t seed : {2, 3}) {
    FlatItem f;
    const ShmStatus s = RecvItem(*ch, &rb, &f);
    if (s == ShmStatus::kLost) {
      ++*lost;
    } else if (s == ShmStatus::kOk &&
               HasPattern(f.buffers[0]->data(), 2 * kMiB, seed)) {
      ++*ok;
    }
  }
  ASSERT_EQ(write(go[1], "g", 1), 1);
  const int status = Wait(child);
  reap.pid = 0;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  for (int fd : {sent[0], sent[1], go[0], go[1]}) close(fd);
}

TEST(OutOfLineChannelTest, AForkedChildThatForgetsItsInheritedFilesSendsSafely) {
  int lost = 0, ok = 0;
  ForkedSendersShareAChannel(/*forget_in_child=*/true, &lost, &ok);
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(ok, 2);
}

// A child that does not call ForgetSent (a C++ user's fork): were the pool
// shared, the child and the parent would write their values into the same
// memfd, and the one published first would be lost (its id overwritten)
// or received with the other's bytes. The pool belongs to the process that
// filled it (ForgetIfForked): both arrive.
TEST(OutOfLineChannelTest, AForkedChildDoesNotWriteIntoTheParentsFiles) {
  int lost = 0, ok = 0;
  ForkedSendersShareAChannel(/*forget_in_child=*/false, &lost, &ok);
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(ok, 2);
}

// ---- recovery -----------------------------------------------------------------

TEST(OutOfLineChannelTest, AWriterKilledWithOutOfLineValuesQueuedIsRecoveredFrom) {
  // The parent queues a value out of line; a child queues one of its own,
  // then dies holding the lock in the middle of a put of a third (a record
  // naming a file the parent holds): written past tail, tail advanced, but
  // count and ool_bytes not (scribbled, even). The next locker re-derives
  // both from the records. The child's own value died with it: lost.
  constexpr size_t kRing = 16 * kMiB;  // room for all three values
  Ref<ProcessChannel> ch = Make(kRing);
  std::string err;
  OutRecord a, b;
  ASSERT_TRUE(ch->Prepare(BufferItem(PatternBuffer(kMiB, 1)), &a, &err)) << err;
  ASSERT_TRUE(ch->Prepare(BufferItem(PatternBuffer(2 * kMiB, 2)), &b, &err))
      << err;
  ASSERT_EQ(a.size(), kOutOfLineRecordBytes);
  ASSERT_EQ(ch->TrySendNoLockWait(a), ShmStatus::kOk);
  RecordBuffer c_record;
  ASSERT_TRUE(FlattenItem(BufferItem(PatternBuffer(3 * kMiB, 3)), &c_record));
  Ref<MemFile> c_file = SealedFile(c_record.span());
  ASSERT_TRUE(c_file);
  RecordBuffer c;
  FlattenOutOfLine(RefTo(*c_file), &c);
  uint8_t* seg = Peer::Segment(*ch);
  pthread_mutex_t* mutex = Peer::Mutex(*ch);
  const size_t state = Peer::StateOffset();  // head, tail, count
  int weights[2];
  ASSERT_EQ(pipe(weights), 0);
  const pid_t child = Fork([&] {
    OutRecord d;
    std::string e;
    if (!ch->Prepare(BufferItem(PatternBuffer(kMiB / 2, 4)), &d, &e)) _exit(2);
    const uint64_t w = OutOfLineBytes(d.head.span());
    if (w == 0) _exit(3);
    if (ch->TrySendNoLockWait(d) != ShmStatus::kOk) _exit(4);
    if (write(weights[1], &w, 8) != 8) _exit(5);
    pthread_mutex_lock(mutex);
    uint64_t tail;
    std::memcpy(&tail, seg + state + 8, 8);
    const uint32_t len = static_cast<uint32_t>(c.size());
    const uint32_t hdr[2] = {len, ~len};
    uint8_t* at = seg + ProcessChannel::kHeaderBytes + tail % kRing;
    std::memcpy(at, hdr, 8);
    std::memcpy(at + 8, c.data(), c.size());
    tail += 8 + ((c.size() + 7) & ~size_t{7});
    std::memcpy(seg + state + 8, &tail, 8);
    const uint64_t wrong_count = 7, wrong_ool = 12345;
    std::memcpy(seg + state + 16, &wrong_count, 8);
    std::memcpy(seg + Peer::OolBytesOffset(), &wrong_ool, 8);
    raise(SIGKILL);
  });
  KillAtExit reap{child};
  uint64_t d_weight = 0;
  close(weights[1]);
  ASSERT_EQ(read(weights[0], &d_weight, 8), 8);
  close(weights[0]);
  const int status = Wait(child);
  reap.pid = 0;
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_EQ(Peer::OolBytes(*ch), 12345u);  // as the child left it
  RecordBuffer rb;
  FlatItem fa;
  ASSERT_EQ(RecvItem(*ch, &rb, &fa), ShmStatus::kOk);  // recovers, takes a
  EXPECT_TRUE(HasPattern(fa.buffers[0]->data(), kMiB, 1));
  EXPECT_EQ(ch->size(), 2u);  // d, c
  EXPECT_EQ(Peer::OolBytes(*ch), d_weight + c_file->size());
  EXPECT_EQ(ch->Recv(&rb, Soon(), false), ShmStatus::kLost);  // d
  EXPECT_EQ(Peer::OolBytes(*ch), c_file->size());
  FlatItem fc;
  ASSERT_EQ(RecvItem(*ch, &rb, &fc), ShmStatus::kOk);
  EXPECT_TRUE(HasPattern(fc.buffers[0]->data(), 3 * kMiB, 3));
  EXPECT_EQ(ch->size(), 0u);
  EXPECT_EQ(Peer::OolBytes(*ch), 0u);
  // And the channel goes on.
  ASSERT_EQ(ch->TrySendNoLockWait(b), ShmStatus::kOk);
  FlatItem fb;
  ASSERT_EQ(RecvItem(*ch, &rb, &fb), ShmStatus::kOk);
  EXPECT_TRUE(HasPattern(fb.buffers[0]->data(), 2 * kMiB, 2));
  EXPECT_EQ(Peer::OolBytes(*ch), 0u);
}

}  // namespace
}  // namespace xchannels
