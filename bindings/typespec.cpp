// bindings/typespec.cpp: typed channels: parse, check and rebuild `type=`.
#include "typespec.h"

namespace xchannels::py {
namespace {

struct Scalar {
  PyObject* type;
  uint32_t kind;
  const char* name;
};

bool ParseInto(ModuleState* st, PyObject* t, TypeSpec* out, int depth);

std::string JoinNames(const std::vector<std::string>& parts,
                      const char* sep) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) s += sep;
    s += parts[i];
  }
  return s;
}

// Scalars with their display names, in the order names are printed.
std::vector<Scalar> Scalars(ModuleState* st) {
  return {
      {reinterpret_cast<PyObject*>(&PyBool_Type), TypeSpec::kBool, "bool"},
      {reinterpret_cast<PyObject*>(&PyLong_Type), TypeSpec::kInt, "int"},
      {reinterpret_cast<PyObject*>(&PyFloat_Type), TypeSpec::kFloat, "float"},
      {reinterpret_cast<PyObject*>(&PyUnicode_Type), TypeSpec::kStr, "str"},
      {reinterpret_cast<PyObject*>(&PyBytes_Type), TypeSpec::kBytes, "bytes"},
      {reinterpret_cast<PyObject*>(st->SharedBufferType), TypeSpec::kBuffer,
       "SharedBuffer"},
      {reinterpret_cast<PyObject*>(st->ChannelType), TypeSpec::kChannel,
       "Channel"},
      {reinterpret_cast<PyObject*>(&PyTuple_Type), TypeSpec::kAnyTuple,
       "tuple"},
      {Py_None, TypeSpec::kNone, "None"},
      {reinterpret_cast<PyObject*>(Py_TYPE(Py_None)), TypeSpec::kNone, "None"},
  };
}

void BuildName(ModuleState* st, TypeSpec* spec) {
  std::vector<std::string> parts;
  uint32_t seen = 0;
  for (const Scalar& s : Scalars(st)) {
    if ((spec->kinds & s.kind) && !(seen & s.kind) && s.kind != TypeSpec::kNone) {
      parts.push_back(s.name);
      seen |= s.kind;
    }
  }
  for (const auto& fixed : spec->fixed_tuples) {
    std::vector<std::string> items;
    for (const TypeSpec& e : fixed) items.push_back(e.name);
    parts.push_back("tuple[" + (items.empty() ? "()" : JoinNames(items, ", ")) +
                    "]");
  }
  for (const TypeSpec& e : spec->variadic_tuples) {
    parts.push_back("tuple[" + e.name + ", ...]");
  }
  if (spec->kinds & TypeSpec::kNone) parts.push_back("None");
  spec->name = JoinNames(parts, " | ");
}

// Returns a new reference to t.__origin__ / t.__args__, or nullptr (no error)
// when absent.
PyObject* OptionalAttr(PyObject* t, const char* name) {
  PyObject* v = PyObject_GetAttrString(t, name);
  if (v == nullptr) PyErr_Clear();
  return v;
}

// typing.Union, without importing typing: if it is not imported yet, no
// object can be its alias.
bool IsTypingUnion(PyObject* origin) {
  PyObject* name = PyUnicode_FromString("typing");
  if (name == nullptr) {
    PyErr_Clear();
    return false;
  }
  PyObject* typing = PyImport_GetModule(name);
  Py_DECREF(name);
  if (typing == nullptr) {
    PyErr_Clear();
    return false;
  }
  PyObject* u = PyObject_GetAttrString(typing, "Union");
  Py_DECREF(typing);
  if (u == nullptr) {
    PyErr_Clear();
    return false;
  }
  bool same = u == origin;
  Py_DECREF(u);
  return same;
}

bool ParseTuple(ModuleState* st, PyObject* args, TypeSpec* out, int depth) {
  Py_ssize_t n = PyTuple_GET_SIZE(args);
  if (n == 2 && PyTuple_GET_ITEM(args, 1) == Py_Ellipsis) {
    TypeSpec elem;
    if (!ParseInto(st, PyTuple_GET_ITEM(args, 0), &elem, depth + 1)) {
      return false;
    }
    BuildName(st, &elem);
    out->variadic_tuples.push_back(std::move(elem));
    return true;
  }
  std::vector<TypeSpec> fixed;
  // tuple[()] is the empty tuple.
  bool empty = n == 1 && PyTuple_Check(PyTuple_GET_ITEM(args, 0)) &&
               PyTuple_GET_SIZE(PyTuple_GET_ITEM(args, 0)) == 0;
  if (!empty) {
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* a = PyTuple_GET_ITEM(args, i);
      if (a == Py_Ellipsis) {
        PyErr_SetString(PyExc_TypeError,
                        "'...' is only allowed as tuple[T, ...]");
        return false;
      }
      TypeSpec elem;
      if (!ParseInto(st, a, &elem, depth + 1)) return false;
      BuildName(st, &elem);
      fixed.push_back(std::move(elem));
    }
  }
  out->fixed_tuples.push_back(std::move(fixed));
  return true;
}

bool ParseInto(ModuleState* st, PyObject* t, TypeSpec* out, int depth) {
  if (depth > 32) {
    PyErr_SetString(PyExc_TypeError, "type= is nested too deeply");
    return false;
  }
  for (const Scalar& s : Scalars(st)) {
    if (t == s.type) {
      out->kinds |= s.kind;
      return true;
    }
  }
  PyObject* origin = OptionalAttr(t, "__origin__");
  PyObject* args = OptionalAttr(t, "__args__");
  bool ok = false;
  bool handled = false;
  if (args != nullptr && PyTuple_Check(args)) {
    bool is_union = PyObject_TypeCheck(t, reinterpret_cast<PyTypeObject*>(
                                              st->UnionType)) ||
                    (origin != nullptr && IsTypingUnion(origin));
    if (is_union) {
      handled = true;
      ok = true;
      for (Py_ssize_t i = 0; ok && i < PyTuple_GET_SIZE(args); ++i) {
        ok = ParseInto(st, PyTuple_GET_ITEM(args, i), out, depth + 1);
      }
    } else if (origin == reinterpret_cast<PyObject*>(&PyTuple_Type)) {
      handled = true;
      ok = ParseTuple(st, args, out, depth);
    }
  }
  Py_XDECREF(origin);
  Py_XDECREF(args);
  if (!handled) {
    if (!PyErr_Occurred()) {
      PyErr_Format(PyExc_TypeError,
                   "type= must be built from int, float, str, bytes, bool, "
                   "None, SharedBuffer, Channel, tuple[...] and unions (X | "
                   "Y); got %R",
                   t);
    }
    return false;
  }
  return ok;
}

bool Matches(ModuleState* st, const TypeSpec& spec, PyObject* obj) {
  uint32_t k = spec.kinds;
  if (obj == Py_None) return k & TypeSpec::kNone;
  if (PyBool_Check(obj)) return k & (TypeSpec::kBool | TypeSpec::kInt);
  if (PyLong_Check(obj)) return k & TypeSpec::kInt;
  if (PyFloat_Check(obj)) return k & TypeSpec::kFloat;
  if (PyUnicode_Check(obj)) return k & TypeSpec::kStr;
  if (PyBytes_Check(obj)) return k & TypeSpec::kBytes;
  if (IsSharedBuffer(st, obj)) return k & TypeSpec::kBuffer;
  if (IsChannel(st, obj)) return k & TypeSpec::kChannel;
  if (PyTuple_Check(obj)) {
    if (k & TypeSpec::kAnyTuple) return true;
    Py_ssize_t n = PyTuple_GET_SIZE(obj);
    for (const auto& fixed : spec.fixed_tuples) {
      if (static_cast<Py_ssize_t>(fixed.size()) != n) continue;
      bool all = true;
      for (Py_ssize_t i = 0; all && i < n; ++i) {
        all = Matches(st, fixed[static_cast<size_t>(i)],
                      PyTuple_GET_ITEM(obj, i));
      }
      if (all) return true;
    }
    for (const TypeSpec& elem : spec.variadic_tuples) {
      bool all = true;
      for (Py_ssize_t i = 0; all && i < n; ++i) {
        all = Matches(st, elem, PyTuple_GET_ITEM(obj, i));
      }
      if (all) return true;
    }
    return false;
  }
  return false;
}

PyObject* Or(PyObject* acc, PyObject* t) {
  // Consumes acc and t.
  if (acc == nullptr || t == nullptr) {
    Py_XDECREF(acc);
    Py_XDECREF(t);
    return nullptr;
  }
  PyObject* r = PyNumber_Or(acc, t);  // what operator.or_ does
  Py_DECREF(acc);
  Py_DECREF(t);
  return r;
}

}  // namespace

std::shared_ptr<const TypeSpec> ParseTypeSpec(ModuleState* st, PyObject* t) {
  auto spec = std::make_shared<TypeSpec>();
  if (!ParseInto(st, t, spec.get(), 0)) return nullptr;
  BuildName(st, spec.get());
  return spec;
}

bool MatchesTypeSpec(ModuleState* st, const TypeSpec& spec, PyObject* obj) {
  return Matches(st, spec, obj);
}

void RaiseTypeMismatch(const TypeSpec& spec, PyObject* obj) {
  PyErr_Format(PyExc_TypeError, "channel expects %s, got %s",
               spec.name.c_str(), Py_TYPE(obj)->tp_name);
}

PyObject* TypeSpecToPython(ModuleState* st, const TypeSpec& spec) {
  PyObject* acc = nullptr;
  auto add = [&](PyObject* t) {  // t: new reference
    acc = acc == nullptr ? t : Or(acc, t);
    return acc != nullptr;
  };
  uint32_t seen = 0;
  for (const Scalar& s : Scalars(st)) {
    if (!(spec.kinds & s.kind) || (seen & s.kind) || s.kind == TypeSpec::kNone) {
      continue;
    }
    seen |= s.kind;
    if (!add(Py_NewRef(s.type))) return nullptr;
  }
  for (const auto& fixed : spec.fixed_tuples) {
    PyObject* args = PyTuple_New(fixed.empty() ? 1 : static_cast<Py_ssize_t>(fixed.size()));
    if (args == nullptr) return nullptr;
    if (fixed.empty()) {
      PyTuple_SET_ITEM(args, 0, PyTuple_New(0));
    }
    for (size_t i = 0; i < fixed.size(); ++i) {
      PyObject* e = TypeSpecToPython(st, fixed[i]);
      if (e == nullptr) {
        Py_DECREF(args);
        return nullptr;
      }
      PyTuple_SET_ITEM(args, static_cast<Py_ssize_t>(i), e);
    }
    PyObject* alias =
        Py_GenericAlias(reinterpret_cast<PyObject*>(&PyTuple_Type), args);
    Py_DECREF(args);
    if (!add(alias)) return nullptr;
  }
  for (const TypeSpec& elem : spec.variadic_tuples) {
    PyObject* e = TypeSpecToPython(st, elem);
    if (e == nullptr) return nullptr;
    PyObject* args = PyTuple_Pack(2, e, Py_Ellipsis);
    Py_DECREF(e);
    if (args == nullptr) return nullptr;
    PyObject* alias =
        Py_GenericAlias(reinterpret_cast<PyObject*>(&PyTuple_Type), args);
    Py_DECREF(args);
    if (!add(alias)) return nullptr;
  }
  if (spec.kinds & TypeSpec::kNone) {
    // Alone, None-only is spelled type(None); in a union, None.
    PyObject* none = acc == nullptr
                         ? Py_NewRef(reinterpret_cast<PyObject*>(Py_TYPE(Py_None)))
                         : Py_NewRef(Py_None);
    if (!add(none)) return nullptr;
  }
  return acc;
}

}  // namespace xchannels::py
