// bindings/typespec.h: `Channel(type=...)`: parsing a type expression into an
// interpreter-neutral TypeSpec, checking values against it, and rebuilding
// the type expression in any interpreter.
//
// Matching follows isinstance(): `int` accepts bool (a subclass of int),
// `float` does not accept int; subclasses (IntEnum, namedtuple) match their
// base. A TypeSpec holds no Python object, so every interpreter may share it.
#ifndef XCHANNELS_BINDINGS_TYPESPEC_H_
#define XCHANNELS_BINDINGS_TYPESPEC_H_

#include <memory>
#include <string>
#include <vector>

#include "state.h"

namespace xchannels::py {

struct TypeSpec {
  enum Kind : uint32_t {
    kNone = 1u << 0,
    kBool = 1u << 1,
    kInt = 1u << 2,
    kFloat = 1u << 3,
    kStr = 1u << 4,
    kBytes = 1u << 5,
    kBuffer = 1u << 6,
    kChannel = 1u << 7,
    kAnyTuple = 1u << 8,
    kComplex = 1u << 9,
    kAnyList = 1u << 10,
    kAnyDict = 1u << 11,
    kAnySet = 1u << 12,
    kAnyFrozenSet = 1u << 13,
  };
  uint32_t kinds = 0;
  std::vector<std::vector<TypeSpec>> fixed_tuples;  // tuple[A, B], ...
  std::vector<TypeSpec> variadic_tuples;            // tuple[A, ...], ...
  std::vector<TypeSpec> lists;                      // list[T], ...
  std::vector<std::vector<TypeSpec>> dicts;         // dict[K, V]: {K, V}
  std::vector<TypeSpec> sets;                       // set[T], ...
  std::vector<TypeSpec> frozensets;                 // frozenset[T], ...
  std::string name;                                 // e.g. "int | None"
};

// What a channel was created with, shared by every handle to it in every
// interpreter: the core channel's attachment.
struct ChannelConfig {
  std::shared_ptr<const TypeSpec> spec;  // type=; nullptr when untyped
  bool pickle = false;                   // fallback='pickle'
  // maxsize as given when it is below 0 (unbounded, as queue.Queue keeps
  // it: Channel(maxsize=-10).maxsize is -10); 0 otherwise.
  int64_t negative_maxsize = 0;
};

// Parses `type=`; raises TypeError and returns nullptr for what is not a
// supported type expression.
std::shared_ptr<const TypeSpec> ParseTypeSpec(ModuleState* st, PyObject* t);
// Checks obj against a channel's spec (nullptr: untyped, always fine).
// Raises TypeError naming the element that does not match ("item [3]:
// expected str, got int"), prefixed with "put_many: items[i]: " when `item`
// is put_many's index i (-1: a single put), and returns false; the prefix
// is only built on failure. Values are classified by values.cpp's Classify, so the check agrees with what travels (an IntEnum is an int, a
// bytearray a SharedBuffer, np.int64 an int).
bool CheckTypeSpec(ModuleState* st, const TypeSpec* spec, PyObject* obj,
                   Py_ssize_t item = -1);
// A channel's check of a value about to be put: true for an untyped channel,
// else CheckTypeSpec against its spec (the one check every put path uses).
inline bool CheckChannelType(PyChannel* ch, PyObject* obj,
                             Py_ssize_t item = -1) {
  if (ch->spec == nullptr) return true;
  return CheckTypeSpec(ch->state, ch->spec->get(), obj, item);
}
// Rebuilds the type expression (int, int | None, tuple[int, ...]) as Python
// objects in the caller's interpreter.
PyObject* TypeSpecToPython(ModuleState* st, const TypeSpec& spec);

}  // namespace xchannels::py

#endif  // XCHANNELS_BINDINGS_TYPESPEC_H_
