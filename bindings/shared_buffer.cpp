// bindings/shared_buffer.cpp: the Python SharedBuffer type: an immutable,
// zero-copy view of a core SharedBuffer that any interpreter may hold.
//
// A heap type made per interpreter. Read-only buffer protocol with the
// original format, itemsize and shape; len() is the size in bytes; slicing
// gives zero-copy byte views; == and hash() compare the bytes.
#include <cstring>
#include <string>

#include "state.h"

namespace xchannels::py {
namespace {

PySharedBuffer* AsBuf(PyObject* o) {
  return reinterpret_cast<PySharedBuffer*>(o);
}

void SharedBufferDealloc(PyObject* self) {
  PySharedBuffer* b = AsBuf(self);
  PyTypeObject* tp = Py_TYPE(self);
  if (b->weakreflist != nullptr) PyObject_ClearWeakRefs(self);
  if (b->buf != nullptr) b->buf->Unref();
  delete[] b->shape;
  delete[] b->strides;
  tp->tp_free(self);
  Py_DECREF(tp);
}

PyObject* SharedBufferNew(PyTypeObject* type, PyObject* args, PyObject* kw) {
  static const char* kwlist[] = {"data", "memfd", nullptr};
  PyObject* data = nullptr;
  int memfd = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$p:SharedBuffer",
                                   const_cast<char**>(kwlist), &data,
                                   &memfd)) {
    return nullptr;
  }
  ModuleState* st = StateOfType(reinterpret_cast<PyObject*>(type));
  if (st == nullptr) return nullptr;
  if (Py_TYPE(data) == st->SharedBufferType &&
      (!memfd || AsBuf(data)->buf->file() != nullptr)) {
    return Py_NewRef(data);
  }
  if (!PyObject_CheckBuffer(data)) {
    PyErr_Format(PyExc_TypeError,
                 "SharedBuffer() needs a bytes-like object, got %s",
                 Py_TYPE(data)->tp_name);
    return nullptr;
  }
  Ref<SharedBuffer> buf = CopyExporter(st, data, memfd != 0);
  if (!buf) return nullptr;
  return WrapSharedBuffer(st, std::move(buf));
}

int SharedBufferGetBuffer(PyObject* self, Py_buffer* view, int flags) {
  PySharedBuffer* b = AsBuf(self);
  if ((flags & PyBUF_WRITABLE) == PyBUF_WRITABLE) {
    PyErr_SetString(PyExc_BufferError, "SharedBuffer is read-only");
    view->obj = nullptr;
    return -1;
  }
  const BufferLayout& layout = b->buf->layout();
  view->obj = Py_NewRef(self);
  view->buf = const_cast<uint8_t*>(b->buf->data());
  view->len = static_cast<Py_ssize_t>(b->buf->size());
  view->readonly = 1;
  view->itemsize = static_cast<Py_ssize_t>(layout.itemsize);
  view->format = (flags & PyBUF_FORMAT) == PyBUF_FORMAT
                     ? const_cast<char*>(layout.format.c_str())
                     : nullptr;
  if ((flags & PyBUF_ND) == PyBUF_ND) {
    view->ndim = b->ndim;
    view->shape = b->shape;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? b->strides
                                                             : nullptr;
  } else {
    // A simple request sees flat unsigned bytes.
    view->ndim = 1;
    view->shape = nullptr;
    view->strides = nullptr;
    view->itemsize = 1;
  }
  view->suboffsets = nullptr;
  view->internal = nullptr;
  return 0;
}

Py_ssize_t SharedBufferLen(PyObject* self) {
  return static_cast<Py_ssize_t>(AsBuf(self)->buf->size());
}

PyObject* SharedBufferSubscript(PyObject* self, PyObject* key) {
  PySharedBuffer* b = AsBuf(self);
  Py_ssize_t n = static_cast<Py_ssize_t>(b->buf->size());
  if (PyIndex_Check(key)) {
    Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred()) return nullptr;
    if (i < 0) i += n;
    if (i < 0 || i >= n) {
      PyErr_SetString(PyExc_IndexError, "SharedBuffer index out of range");
      return nullptr;
    }
    return PyLong_FromLong(b->buf->data()[i]);
  }
  if (PySlice_Check(key)) {
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(key, &start, &stop, &step) < 0) return nullptr;
    Py_ssize_t len = PySlice_AdjustIndices(n, &start, &stop, step);
    if (step != 1) {
      PyErr_SetString(PyExc_ValueError,
                      "SharedBuffer slices must have step 1 (they are "
                      "zero-copy views)");
      return nullptr;
    }
    Ref<SharedBuffer> base = Ref<SharedBuffer>::Share(b->buf);
    Ref<SharedBuffer> s = SharedBuffer::Slice(base, static_cast<size_t>(start),
                                              static_cast<size_t>(len));
    if (!s) return PyErr_NoMemory();
    return WrapSharedBuffer(b->state, std::move(s));
  }
  PyErr_Format(PyExc_TypeError,
               "SharedBuffer indices must be integers or slices, not %s",
               Py_TYPE(key)->tp_name);
  return nullptr;
}

PyObject* SharedBufferRichCompare(PyObject* self, PyObject* other, int op) {
  if ((op != Py_EQ && op != Py_NE) || !PyObject_CheckBuffer(other)) {
    Py_RETURN_NOTIMPLEMENTED;
  }
  PySharedBuffer* b = AsBuf(self);
  Py_buffer view;
  if (PyObject_GetBuffer(other, &view, PyBUF_SIMPLE) < 0) {
    PyErr_Clear();
    Py_RETURN_NOTIMPLEMENTED;
  }
  bool equal = static_cast<size_t>(view.len) == b->buf->size() &&
               (view.len == 0 ||
                std::memcmp(view.buf, b->buf->data(), b->buf->size()) == 0);
  PyBuffer_Release(&view);
  return PyBool_FromLong((op == Py_EQ) == equal);
}

Py_hash_t SharedBufferHash(PyObject* self) {
  PySharedBuffer* b = AsBuf(self);
  if (b->hash != -1) return b->hash;
  // Same hash as bytes with the same content, since they compare equal.
  PyObject* bytes = PyBytes_FromStringAndSize(
      reinterpret_cast<const char*>(b->buf->data()),
      static_cast<Py_ssize_t>(b->buf->size()));
  if (bytes == nullptr) return -1;
  b->hash = PyObject_Hash(bytes);
  Py_DECREF(bytes);
  return b->hash;
}

PyObject* SharedBufferRepr(PyObject* self) {
  PySharedBuffer* b = AsBuf(self);
  std::string shape = "(";
  for (int i = 0; i < b->ndim; ++i) {
    shape += std::to_string(b->shape[i]);
    shape += (b->ndim == 1 || i + 1 < b->ndim) ? "," : "";
    if (i + 1 < b->ndim) shape += " ";
  }
  shape += ")";
  return PyUnicode_FromFormat(
      "<xchannels.SharedBuffer nbytes=%zd format='%s' shape=%s>",
      static_cast<Py_ssize_t>(b->buf->size()),
      b->buf->layout().format.c_str(), shape.c_str());
}

PyObject* SharedBufferBytes(PyObject* self, PyObject*) {
  PySharedBuffer* b = AsBuf(self);
  return PyBytes_FromStringAndSize(
      reinterpret_cast<const char*>(b->buf->data()),
      static_cast<Py_ssize_t>(b->buf->size()));
}

PyObject* SharedBufferReduce(PyObject* self, PyObject*) {
  // Pickles as a copy of the bytes (layout kept via memoryview.cast on load
  // is not possible for every format, so only flat buffers round-trip
  // exactly).
  PyObject* data = SharedBufferBytes(self, nullptr);
  if (data == nullptr) return nullptr;
  return Py_BuildValue("(O(N))", reinterpret_cast<PyObject*>(Py_TYPE(self)),
                       data);
}

PyObject* GetNbytes(PyObject* self, void*) {
  return PyLong_FromSize_t(AsBuf(self)->buf->size());
}
PyObject* GetFormat(PyObject* self, void*) {
  return PyUnicode_FromString(AsBuf(self)->buf->layout().format.c_str());
}
PyObject* GetItemsize(PyObject* self, void*) {
  return PyLong_FromSize_t(AsBuf(self)->buf->layout().itemsize);
}
PyObject* GetShape(PyObject* self, void*) {
  PySharedBuffer* b = AsBuf(self);
  PyObject* t = PyTuple_New(b->ndim);
  if (t == nullptr) return nullptr;
  for (int i = 0; i < b->ndim; ++i) {
    PyObject* v = PyLong_FromSsize_t(b->shape[i]);
    if (v == nullptr) {
      Py_DECREF(t);
      return nullptr;
    }
    PyTuple_SET_ITEM(t, i, v);
  }
  return t;
}
PyObject* GetNdim(PyObject* self, void*) {
  return PyLong_FromLong(AsBuf(self)->ndim);
}
PyObject* GetReadonly(PyObject*, void*) { Py_RETURN_TRUE; }

PyMethodDef kSharedBufferMethods[] = {
    {"__bytes__", SharedBufferBytes, METH_NOARGS,
     "Return a copy of the contents as bytes."},
    {"__reduce__", SharedBufferReduce, METH_NOARGS, nullptr},
    {"tobytes", SharedBufferBytes, METH_NOARGS,
     "tobytes() -> bytes\n\nReturn a copy of the contents as bytes."},
    {nullptr, nullptr, 0, nullptr},
};

PyObject* GetMemfd(PyObject* self, void*) {
  return PyBool_FromLong(AsBuf(self)->buf->file() != nullptr);
}

PyGetSetDef kSharedBufferGetSet[] = {
    {"nbytes", GetNbytes, nullptr, "Size in bytes.", nullptr},
    {"format", GetFormat, nullptr, "struct-module format of one item.",
     nullptr},
    {"itemsize", GetItemsize, nullptr, "Size of one item in bytes.", nullptr},
    {"shape", GetShape, nullptr, "C-contiguous shape, as a tuple.", nullptr},
    {"ndim", GetNdim, nullptr, "Number of dimensions.", nullptr},
    {"readonly", GetReadonly, nullptr, "Always True.", nullptr},
    {"memfd", GetMemfd, nullptr,
     "Whether the bytes live in a sealed memfd: a ProcessChannel then sends\n"
     "them to another process by descriptor, without a copy.",
     nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMemberDef kSharedBufferMembers[] = {
    {"__weaklistoffset__", Py_T_PYSSIZET,
     offsetof(PySharedBuffer, weakreflist), Py_READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

const char kSharedBufferDoc[] =
    "SharedBuffer(data, *, memfd=False)\n--\n\n"
    "An immutable block of bytes that belongs to no interpreter.\n\n"
    "``data`` (any bytes-like object) is copied once, C-contiguous, keeping\n"
    "its format, itemsize and shape. Sending a SharedBuffer through a\n"
    "Channel is zero-copy: the receiver sees the same memory, in O(1)\n"
    "whatever the size, and the memory lives as long as any interpreter\n"
    "holds a view of it. With memfd=True the copy goes into a sealed memfd\n"
    "(one descriptor while the buffer lives), and a ProcessChannel sends it\n"
    "to another process the same way: no copy, the same memory there.\n"
    "Supports the read-only buffer protocol, len() (in bytes), bytes(), ==,\n"
    "hash() and zero-copy slicing.";

PyType_Slot kSharedBufferSlots[] = {
    {Py_tp_doc, const_cast<char*>(kSharedBufferDoc)},
    {Py_tp_new, reinterpret_cast<void*>(NoExcept<SharedBufferNew>::Call)},
    {Py_tp_dealloc, reinterpret_cast<void*>(SharedBufferDealloc)},
    {Py_tp_repr, reinterpret_cast<void*>(NoExcept<SharedBufferRepr>::Call)},
    {Py_tp_hash, reinterpret_cast<void*>(SharedBufferHash)},
    {Py_tp_richcompare, reinterpret_cast<void*>(SharedBufferRichCompare)},
    {Py_tp_methods, kSharedBufferMethods},
    {Py_tp_getset, kSharedBufferGetSet},
    {Py_tp_members, kSharedBufferMembers},
    {Py_bf_getbuffer, reinterpret_cast<void*>(SharedBufferGetBuffer)},
    {Py_mp_length, reinterpret_cast<void*>(SharedBufferLen)},
    {Py_sq_length, reinterpret_cast<void*>(SharedBufferLen)},
    {Py_mp_subscript, reinterpret_cast<void*>(NoExcept<SharedBufferSubscript>::Call)},
    {0, nullptr},
};

PyType_Spec kSharedBufferSpec = {
    "xchannels.SharedBuffer",
    sizeof(PySharedBuffer),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    kSharedBufferSlots,
};

}  // namespace

bool InitSharedBufferType(PyObject* module, ModuleState* st) {
  return AddHeapType(module, &kSharedBufferSpec, "SharedBuffer",
                     &st->SharedBufferType);
}

PyObject* WrapSharedBuffer(ModuleState* st, Ref<SharedBuffer> buf) {
  PyTypeObject* tp = st->SharedBufferType;
  auto* self = reinterpret_cast<PySharedBuffer*>(tp->tp_alloc(tp, 0));
  if (self == nullptr) return nullptr;
  self->state = st;
  self->hash = -1;
  self->weakreflist = nullptr;
  std::vector<int64_t> shape = buf->shape();
  self->ndim = static_cast<int>(shape.size());
  self->shape = new Py_ssize_t[shape.size()];
  self->strides = new Py_ssize_t[shape.size()];
  Py_ssize_t stride = static_cast<Py_ssize_t>(buf->layout().itemsize);
  for (int i = self->ndim - 1; i >= 0; --i) {
    self->shape[i] = static_cast<Py_ssize_t>(shape[i]);
    self->strides[i] = stride;
    stride *= self->shape[i];
  }
  self->buf = buf.Release();
  return reinterpret_cast<PyObject*>(self);
}

Ref<SharedBuffer> CopyExporter(ModuleState* st, PyObject* obj,
                               bool in_file) {
  (void)st;
  Py_buffer view;
  if (PyObject_GetBuffer(obj, &view, PyBUF_FULL_RO) < 0) return nullptr;
  BufferLayout layout;
  layout.format = view.format != nullptr ? view.format : "B";
  layout.itemsize = static_cast<size_t>(view.itemsize);
  if (view.ndim > 1) {
    layout.shape.assign(view.shape, view.shape + view.ndim);
  }
  size_t n = static_cast<size_t>(view.len);
  if (!layout.Fits(n)) {
    PyBuffer_Release(&view);
    PyErr_SetString(PyExc_ValueError,
                    "SharedBuffer(): the exporter's shape, itemsize and "
                    "length disagree");
    return nullptr;
  }
  uint8_t* dst = nullptr;
  Ref<SharedBuffer> buf;
  Ref<MemFile> file;
  std::string error;
  if (in_file) {
    // Written once into a sealed memfd: it can then travel to another
    // process by descriptor (mem_file.h).
    file = MemFile::Create(n, /*populate=*/false, &error);
    if (file) dst = file->writable();
  } else {
    buf = SharedBuffer::Allocate(n, &dst, std::move(layout));
  }
  if (dst == nullptr) {
    PyBuffer_Release(&view);
    if (!in_file) return PyErr_NoMemory(), nullptr;
    PyErr_Format(PyExc_OSError, "SharedBuffer(memfd=True): %s", error.c_str());
    return nullptr;
  }
  int rc = 0;
  if (n > 0) {
    if (in_file && PyBuffer_IsContiguous(&view, 'C')) {
      // pwrite fills the file's fresh pages without faulting them in.
      if (!file->WriteAt(0, view.buf, n)) {
        PyBuffer_Release(&view);
        return PyErr_SetFromErrno(PyExc_OSError), nullptr;
      }
    } else if (PyBuffer_IsContiguous(&view, 'C')) {
      std::memcpy(dst, view.buf, n);
    } else {
      rc = PyBuffer_ToContiguous(dst, &view, view.len, 'C');
    }
  }
  PyBuffer_Release(&view);
  if (rc < 0) return nullptr;
  if (in_file) {
    if (!file->Seal(&error)) {
      PyErr_Format(PyExc_OSError, "SharedBuffer(memfd=True): %s",
                   error.c_str());
      return nullptr;
    }
    buf = SharedBuffer::InFile(std::move(file), 0, n, std::move(layout));
    if (!buf) return PyErr_NoMemory(), nullptr;
  }
  return buf;
}

}  // namespace xchannels::py
