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
  };
  uint32_t kinds = 0;
  std::vector<std::vector<TypeSpec>> fixed_tuples;  // tuple[A, B], ...
  std::vector<TypeSpec> variadic_tuples;            // tuple[A, ...], ...
  std::string name;                                 // e.g. "int | None"
};

// Parses `type=`; raises TypeError and returns nullptr for what is not a
// supported type expression.
std::shared_ptr<const TypeSpec> ParseTypeSpec(ModuleState* st, PyObject* t);
// True if obj matches. Never raises.
bool MatchesTypeSpec(ModuleState* st, const TypeSpec& spec, PyObject* obj);
// Raises the TypeError for a value that does not match.
void RaiseTypeMismatch(const TypeSpec& spec, PyObject* obj);
// Rebuilds the type expression (int, int | None, tuple[int, ...]) as Python
// objects in the caller's interpreter.
PyObject* TypeSpecToPython(ModuleState* st, const TypeSpec& spec);

}  // namespace xchannels::py

#endif  // XCHANNELS_BINDINGS_TYPESPEC_H_
