// bindings/task_claims.cpp: the pool's task claim table as private module
// functions (_task_start, _task_cancel, _task_running, _task_forget,
// _task_forget_table, _task_claims), over
// core/include/xchannels/task_claims.h.
//
// Bound with pybind11: each is called once per batch of tasks or once per
// future's cancel() / running(), never per item, so its call overhead does
// not count (docs/design.md, "What pybind11 is for"). The table itself is
// process-wide and holds no Python object.
#include "private_api.h"

#include <cstdint>
#include <vector>

#include "xchannels/task_claims.h"

namespace xchannels::py {
namespace {

// The task ids of a list or tuple of ints, for the claim table.
std::vector<uint64_t> TaskIds(pyb::handle seq) {
  PyObject* fast = PySequence_Fast(seq.ptr(), "task ids must be a sequence");
  if (fast == nullptr) throw pyb::error_already_set();
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  std::vector<uint64_t> ids;
  ids.reserve(static_cast<size_t>(n));
  PyObject** items = PySequence_Fast_ITEMS(fast);
  for (Py_ssize_t i = 0; i < n; ++i) {
    const unsigned long long id = PyLong_AsUnsignedLongLong(items[i]);
    if (id == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
      Py_DECREF(fast);
      throw pyb::error_already_set();
    }
    ids.push_back(id);
  }
  Py_DECREF(fast);
  return ids;
}

}  // namespace

void DefineTaskClaims(pyb::module_& m) {
  // The pool's arbiter between cancel() in the caller and a worker about to
  // run a task (core/include/xchannels/task_claims.h). Private: used by
  // xchannels._pool and xchannels._bootstrap.
  m.def(
      "_task_start",
      [](uint64_t table, pyb::handle tasks) -> pyb::object {
        std::vector<uint64_t> ids = TaskIds(tasks);
        std::vector<uint64_t> cancelled;
        TaskClaims::Global().Start(table, ids, &cancelled);
        if (cancelled.empty()) return pyb::none();
        pyb::tuple out(cancelled.size());
        for (size_t i = 0; i < cancelled.size(); ++i) out[i] = pyb::int_(cancelled[i]);
        return out;
      },
      pyb::arg("table"), pyb::arg("tasks"),
      "_task_start(table, tasks) -> tuple | None\n\nA worker claims these "
      "tasks to run them: None, or the ids of those already cancelled (not "
      "to be run).");
  m.def(
      "_task_cancel",
      [](uint64_t table, uint64_t task) { return TaskClaims::Global().Cancel(table, task); },
      pyb::arg("table"), pyb::arg("task"),
      "_task_cancel(table, task) -> bool\n\nCancel a task no worker has "
      "started: True if it is cancelled, False if a worker started it.");
  m.def(
      "_task_running",
      [](uint64_t table, uint64_t task) { return TaskClaims::Global().Running(table, task); },
      pyb::arg("table"), pyb::arg("task"),
      "_task_running(table, task) -> bool\n\nWhether a worker started the "
      "task and the caller has not yet forgotten it.");
  m.def(
      "_task_forget",
      [](uint64_t table, pyb::handle tasks) {
        std::vector<uint64_t> ids = TaskIds(tasks);
        TaskClaims::Global().Forget(table, ids);
      },
      pyb::arg("table"), pyb::arg("tasks"),
      "_task_forget(table, tasks) -> None\n\nDrop the entries of tasks "
      "whose outcome the caller has.");
  m.def(
      "_task_forget_table",
      [](uint64_t table) { TaskClaims::Global().ForgetTable(table); }, pyb::arg("table"),
      "_task_forget_table(table) -> None\n\nDrop every entry of a pool.");
  m.def(
      "_task_claims", []() { return TaskClaims::Global().size(); },
      "Entries in the task claim table (for leak tests).");
}

}  // namespace xchannels::py
