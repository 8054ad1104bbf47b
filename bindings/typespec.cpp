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
void BuildName(ModuleState* st, TypeSpec* spec);

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
      {reinterpret_cast<PyObject*>(&PyComplex_Type), TypeSpec::kComplex, "complex"},
      {reinterpret_cast<PyObject*>(&PyUnicode_Type), TypeSpec::kStr, "str"},
      {reinterpret_cast<PyObject*>(&PyBytes_Type), TypeSpec::kBytes, "bytes"},
      {reinterpret_cast<PyObject*>(st->SharedBufferType), TypeSpec::kBuffer,
       "SharedBuffer"},
      {reinterpret_cast<PyObject*>(st->ChannelType), TypeSpec::kChannel,
       "Channel"},
      {reinterpret_cast<PyObject*>(&PyTuple_Type), TypeSpec::kAnyTuple,
       "tuple"},
      {reinterpret_cast<PyObject*>(&PyList_Type), TypeSpec::kAnyList, "list"},
      {reinterpret_cast<PyObject*>(&PyDict_Type), TypeSpec::kAnyDict, "dict"},
      {reinterpret_cast<PyObject*>(&PySet_Type), TypeSpec::kAnySet, "set"},
      {reinterpret_cast<PyObject*>(&PyFrozenSet_Type), TypeSpec::kAnyFrozenSet,
       "frozenset"},
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
  for (const TypeSpec& e : spec->lists) parts.push_back("list[" + e.name + "]");
  for (const auto& kv : spec->dicts) {
    parts.push_back("dict[" + kv[0].name + ", " + kv[1].name + "]");
  }
  for (const TypeSpec& e : spec->sets) parts.push_back("set[" + e.name + "]");
  for (const TypeSpec& e : spec->frozensets) {
    parts.push_back("frozenset[" + e.name + "]");
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

// list[T], set[T], frozenset[T], dict[K, V].
bool ParseContainer(ModuleState* st, PyObject* origin, PyObject* args,
                    TypeSpec* out, int depth) {
  const bool is_dict = origin == reinterpret_cast<PyObject*>(&PyDict_Type);
  const char* name = reinterpret_cast<PyTypeObject*>(origin)->tp_name;
  Py_ssize_t want = is_dict ? 2 : 1;
  if (PyTuple_GET_SIZE(args) != want) {
    PyErr_Format(PyExc_TypeError, "type=: %s[...] takes %zd type argument%s",
                 name, want, want == 1 ? "" : "s");
    return false;
  }
  std::vector<TypeSpec> elems;
  for (Py_ssize_t i = 0; i < want; ++i) {
    TypeSpec e;
    if (!ParseInto(st, PyTuple_GET_ITEM(args, i), &e, depth + 1)) return false;
    BuildName(st, &e);
    elems.push_back(std::move(e));
  }
  if (is_dict) {
    out->dicts.push_back(std::move(elems));
  } else if (origin == reinterpret_cast<PyObject*>(&PyList_Type)) {
    out->lists.push_back(std::move(elems[0]));
  } else if (origin == reinterpret_cast<PyObject*>(&PySet_Type)) {
    out->sets.push_back(std::move(elems[0]));
  } else {
    out->frozensets.push_back(std::move(elems[0]));
  }
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
    } else if (origin == reinterpret_cast<PyObject*>(&PyList_Type) ||
               origin == reinterpret_cast<PyObject*>(&PySet_Type) ||
               origin == reinterpret_cast<PyObject*>(&PyFrozenSet_Type) ||
               origin == reinterpret_cast<PyObject*>(&PyDict_Type)) {
      handled = true;
      ok = ParseContainer(st, origin, args, out, depth);
    }
  }
  Py_XDECREF(origin);
  Py_XDECREF(args);
  if (!handled) {
    if (!PyErr_Occurred()) {
      PyErr_Format(PyExc_TypeError,
                   "type= must be built from int, float, complex, str, bytes, "
                   "bool, None, SharedBuffer, Channel, tuple[...], list[T], "
                   "dict[K, V], set[T], frozenset[T] and unions (X | Y); got %R",
                   t);
    }
    return false;
  }
  return ok;
}

// The element checks below stop at the first element that does not match
// and, when asked (why != nullptr), say where it is and what was expected.
struct Why {
  std::string path;      // "[3]['k']"
  std::string expected;  // the spec's name at that place
  std::string got;       // the element's type name
};

bool Matches(ModuleState* st, const TypeSpec& spec, PyObject* obj, Why* why);

bool AllItems(ModuleState* st, const TypeSpec& elem, PyObject* seq, Why* why) {
  // seq: a tuple or list (items read by index, the list re-checked each
  // step: nothing here runs user code, except a NumPy scalar's item()).
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); ++i) {
    if (!Matches(st, elem, PySequence_Fast_GET_ITEM(seq, i), why)) {
      if (why != nullptr) why->path = "[" + std::to_string(i) + "]" + why->path;
      return false;
    }
  }
  return true;
}

bool AllMembers(ModuleState* st, const TypeSpec& elem, PyObject* set, Why* why) {
  PyObject* it = PyObject_GetIter(set);
  if (it == nullptr) {
    PyErr_Clear();
    return false;
  }
  bool ok = true;
  Py_ssize_t i = 0;
  PyObject* item;
  while (ok && (item = PyIter_Next(it)) != nullptr) {
    ok = Matches(st, elem, item, why);
    if (!ok && why != nullptr) why->path = "{#" + std::to_string(i) + "}" + why->path;
    Py_DECREF(item);
    ++i;
  }
  Py_DECREF(it);
  if (PyErr_Occurred()) {
    PyErr_Clear();
    return false;
  }
  return ok;
}

bool AllPairs(ModuleState* st, const std::vector<TypeSpec>& kv, PyObject* dict, Why* why) {
  Py_ssize_t pos = 0;
  PyObject *key, *value;
  while (PyDict_Next(dict, &pos, &key, &value)) {
    if (!Matches(st, kv[0], key, why)) {
      if (why != nullptr) why->path = ".keys()[" + std::to_string(pos - 1) + "]" + why->path;
      return false;
    }
    // The value's check may run code (a NumPy scalar's item()) that drops
    // the pair; the key is named below: hold it.
    Py_INCREF(key);
    Py_INCREF(value);
    const bool ok = Matches(st, kv[1], value, why);
    Py_DECREF(value);
    if (!ok && why != nullptr) {
      // Matches() leaves no exception set, so the key's repr (Python code)
      // may run; a failing repr is named "?".
      PyObject* r = PyObject_Repr(key);
      const char* text = r != nullptr ? PyUnicode_AsUTF8(r) : nullptr;
      if (text == nullptr) PyErr_Clear();
      why->path = "[" + std::string(text != nullptr ? text : "?") + "]" + why->path;
      Py_XDECREF(r);
    }
    Py_DECREF(key);
    if (!ok) return false;
  }
  return true;
}

// Whether obj matches spec. A container of the right kind whose elements
// do not match fills *why with the first bad element (when the spec has one
// alternative of that kind, so the place is unambiguous).
bool Matches(ModuleState* st, const TypeSpec& spec, PyObject* obj, Why* why) {
  const uint32_t k = spec.kinds;
  ValueClass c = Classify(st, obj);
  bool ok = false;
  switch (c.kind) {
    case ValueKind::kNone: ok = k & TypeSpec::kNone; break;
    case ValueKind::kBool: ok = k & (TypeSpec::kBool | TypeSpec::kInt); break;
    case ValueKind::kInt:
    case ValueKind::kIndex: ok = k & TypeSpec::kInt; break;
    case ValueKind::kFloat: ok = k & TypeSpec::kFloat; break;
    case ValueKind::kComplex: ok = k & TypeSpec::kComplex; break;
    case ValueKind::kStr: ok = k & TypeSpec::kStr; break;
    case ValueKind::kBytes: ok = k & TypeSpec::kBytes; break;
    case ValueKind::kSharedBuffer:
    case ValueKind::kExporter: ok = k & TypeSpec::kBuffer; break;
    case ValueKind::kChannel: ok = k & TypeSpec::kChannel; break;
    case ValueKind::kNumpyScalar: {
      // What it travels as: its .item().
      PyObject* v = PyObject_CallMethod(obj, "item", nullptr);
      if (v == nullptr) {
        PyErr_Clear();
        break;
      }
      ok = Classify(st, v).kind != ValueKind::kNumpyScalar && Matches(st, spec, v, nullptr);
      Py_DECREF(v);
      break;
    }
    case ValueKind::kTuple: {
      if (k & TypeSpec::kAnyTuple) return true;
      Py_ssize_t n = PyTuple_GET_SIZE(obj);
      const size_t alternatives = spec.fixed_tuples.size() + spec.variadic_tuples.size();
      Why* inner = alternatives == 1 ? why : nullptr;
      for (const auto& fixed : spec.fixed_tuples) {
        if (static_cast<Py_ssize_t>(fixed.size()) != n) {
          inner = nullptr;  // wrong length: say so at the top
          continue;
        }
        bool all = true;
        for (Py_ssize_t i = 0; all && i < n; ++i) {
          all = Matches(st, fixed[static_cast<size_t>(i)], PyTuple_GET_ITEM(obj, i), inner);
          if (!all && inner != nullptr) inner->path = "[" + std::to_string(i) + "]" + inner->path;
        }
        if (all) return true;
      }
      for (const TypeSpec& elem : spec.variadic_tuples) {
        if (AllItems(st, elem, obj, inner)) return true;
      }
      if (inner != nullptr && !inner->expected.empty()) return false;
      break;
    }
    case ValueKind::kList: {
      if (k & TypeSpec::kAnyList) return true;
      Why* inner = spec.lists.size() == 1 ? why : nullptr;
      for (const TypeSpec& elem : spec.lists) {
        if (AllItems(st, elem, obj, inner)) return true;
      }
      if (inner != nullptr && !inner->expected.empty()) return false;
      break;
    }
    case ValueKind::kDict: {
      if (k & TypeSpec::kAnyDict) return true;
      Why* inner = spec.dicts.size() == 1 ? why : nullptr;
      for (const auto& kv : spec.dicts) {
        if (AllPairs(st, kv, obj, inner)) return true;
      }
      if (inner != nullptr && !inner->expected.empty()) return false;
      break;
    }
    case ValueKind::kSet:
    case ValueKind::kFrozenSet: {
      const bool frozen = c.kind == ValueKind::kFrozenSet;
      if (k & (frozen ? TypeSpec::kAnyFrozenSet : TypeSpec::kAnySet)) return true;
      const auto& alts = frozen ? spec.frozensets : spec.sets;
      Why* inner = alts.size() == 1 ? why : nullptr;
      for (const TypeSpec& elem : alts) {
        if (AllMembers(st, elem, obj, inner)) return true;
      }
      if (inner != nullptr && !inner->expected.empty()) return false;
      break;
    }
    case ValueKind::kOther:
      break;
  }
  if (!ok && why != nullptr) {
    why->path.clear();
    why->expected = spec.name;
    why->got = Py_TYPE(obj)->tp_name;
  }
  return ok;
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

bool CheckTypeSpec(ModuleState* st, const TypeSpec* spec, PyObject* obj,
                   Py_ssize_t item) {
  if (spec == nullptr) return true;
  if (Matches(st, *spec, obj, nullptr)) return true;
  const std::string prefix =
      item < 0 ? "" : "put_many: items[" + std::to_string(item) + "]: ";
  const char* where = prefix.c_str();
  // Again, now saying where: the failure path is off the hot path.
  Why why;
  Matches(st, *spec, obj, &why);
  if (why.expected.empty()) {  // no element to blame: the value itself
    why.expected = spec->name;
    why.got = Py_TYPE(obj)->tp_name;
  }
  if (why.path.empty()) {
    PyErr_Format(PyExc_TypeError, "%schannel expects %s, got %s", where,
                 spec->name.c_str(), why.got.c_str());
  } else {
    PyErr_Format(PyExc_TypeError, "%sitem %s: expected %s, got %s (channel expects %s)",
                 where, why.path.c_str(), why.expected.c_str(), why.got.c_str(),
                 spec->name.c_str());
  }
  return false;
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
  auto generic = [&](PyTypeObject* origin, const std::vector<const TypeSpec*>& elems) {
    PyObject* args = PyTuple_New(static_cast<Py_ssize_t>(elems.size()));
    if (args == nullptr) return false;
    for (size_t i = 0; i < elems.size(); ++i) {
      PyObject* e = TypeSpecToPython(st, *elems[i]);
      if (e == nullptr) {
        Py_DECREF(args);
        return false;
      }
      PyTuple_SET_ITEM(args, static_cast<Py_ssize_t>(i), e);
    }
    PyObject* alias = Py_GenericAlias(reinterpret_cast<PyObject*>(origin),
                                      elems.size() == 1 ? PyTuple_GET_ITEM(args, 0) : args);
    Py_DECREF(args);
    return add(alias);
  };
  for (const TypeSpec& e : spec.lists) {
    if (!generic(&PyList_Type, {&e})) return nullptr;
  }
  for (const auto& kv : spec.dicts) {
    if (!generic(&PyDict_Type, {&kv[0], &kv[1]})) return nullptr;
  }
  for (const TypeSpec& e : spec.sets) {
    if (!generic(&PySet_Type, {&e})) return nullptr;
  }
  for (const TypeSpec& e : spec.frozensets) {
    if (!generic(&PyFrozenSet_Type, {&e})) return nullptr;
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
