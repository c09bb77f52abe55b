// Node-API bindings for the raftkv WAL primitives (see src/wal/native-backend.ts for the typed
// TypeScript view of everything exported here). Blocking work runs off the JS thread: one-shot
// operations on the libuv pool (AsyncWorker), segment appends on each segment's own writer
// thread, completed back on the JS thread through a thread-safe function, one call per group.
#include <napi.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "crc32c.h"
#include "format.h"
#include "segment.h"
#include "sysio.h"

namespace raftkv {
namespace {

Napi::Error MakeSysError(Napi::Env env, const SysError& e) {
  Napi::Error error = Napi::Error::New(env, describe(e));
  bool locked = e.message.rfind("ELOCKED", 0) == 0;
  error.Set("code", Napi::String::New(env, locked ? "ELOCKED" : errno_name(e.err)));
  error.Set("errno", Napi::Number::New(env, -e.err));
  if (!e.syscall.empty()) error.Set("syscall", Napi::String::New(env, e.syscall));
  if (!e.path.empty()) error.Set("path", Napi::String::New(env, e.path));
  return error;
}

std::string RequireString(const Napi::Value& value, const char* name) {
  if (!value.IsString()) {
    throw Napi::TypeError::New(value.Env(), std::string(name) + " must be a string");
  }
  return value.As<Napi::String>().Utf8Value();
}

double RequireNumber(const Napi::Value& value, const char* name, double min, double max) {
  if (!value.IsNumber()) {
    throw Napi::TypeError::New(value.Env(), std::string(name) + " must be a number");
  }
  double n = value.As<Napi::Number>().DoubleValue();
  if (!(n >= min && n <= max) || n != static_cast<double>(static_cast<int64_t>(n))) {
    throw Napi::RangeError::New(value.Env(), std::string(name) + " must be an integer in [" +
                                                 std::to_string(static_cast<int64_t>(min)) + ", " +
                                                 std::to_string(static_cast<int64_t>(max)) + "]");
  }
  return n;
}

constexpr double kMaxSafeInteger = 9007199254740991.0;

// An AsyncWorker running `work` on the libuv pool and settling a promise with `to_js` or the
// SysError it returned.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<SysError()> work,
                std::function<Napi::Value(Napi::Env)> to_js)
      : Napi::AsyncWorker(env, "raftkv:native"),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        to_js_(std::move(to_js)) {}

  static Napi::Promise Run(Napi::Env env, std::function<SysError()> work,
                           std::function<Napi::Value(Napi::Env)> to_js) {
    auto* worker = new PromiseWorker(env, std::move(work), std::move(to_js));
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 protected:
  void Execute() override { result_ = work_(); }
  void OnOK() override {
    Napi::Env env = Env();
    if (!result_.ok()) {
      deferred_.Reject(MakeSysError(env, result_).Value());
      return;
    }
    deferred_.Resolve(to_js_(env));
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<SysError()> work_;
  std::function<Napi::Value(Napi::Env)> to_js_;
  SysError result_;
};

// ---------------------------------------------------------------------------------------------
// Frame buffers: native, aligned memory that JS lays frames out in (through an ArrayBuffer view)
// and the writer seals and writes in place. allocateFrameBuffer(bytes, huge) returns
// { bytes: Uint8Array, handle: External }; append() takes the handle, so a batch always refers
// to memory this addon owns, whatever JS does with the view meanwhile.

using SharedFrameBuffer = std::shared_ptr<FrameBuffer>;

// Marks the Externals allocateFrameBuffer hands out, so append() never misreads another one.
constexpr napi_type_tag kFrameBufferTag = {0x7261667466726d62ULL, 0x7566666572763031ULL};

Napi::Value AllocateFrameBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t capacity = static_cast<size_t>(RequireNumber(info[0], "bytes", 1, 1024.0 * 1024 * 1024));
  bool huge = info.Length() > 1 && info[1].ToBoolean().Value();
  SharedFrameBuffer buffer = FrameBuffer::allocate(capacity, huge);
  if (!buffer) throw Napi::RangeError::New(env, "cannot allocate a WAL frame buffer of " + std::to_string(capacity) + " bytes");
  // Each JS object owns one reference; the memory goes when the last holder (view, handle or
  // in-flight batch) lets go.
  auto for_view = std::make_unique<SharedFrameBuffer>(buffer);
  Napi::ArrayBuffer bytes = Napi::ArrayBuffer::New(
      env, buffer->data(), buffer->capacity(),
      [](Napi::Env e, void*, SharedFrameBuffer* owner) {
        Napi::MemoryManagement::AdjustExternalMemory(e, -static_cast<int64_t>((*owner)->capacity()));
        delete owner;
      },
      for_view.get());
  for_view.release();  // owned by the ArrayBuffer's finalizer now
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(buffer->capacity()));
  auto for_handle = std::make_unique<SharedFrameBuffer>(buffer);
  auto handle = Napi::External<SharedFrameBuffer>::New(env, for_handle.get(),
                                                       [](Napi::Env, SharedFrameBuffer* owner) { delete owner; });
  for_handle.release();
  handle.TypeTag(&kFrameBufferTag);
  Napi::Object out = Napi::Object::New(env);
  out.Set("bytes", Napi::Uint8Array::New(env, buffer->capacity(), bytes, 0));
  out.Set("handle", handle);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Segment handle
//
// append/sync/close queue a batch and return nothing; results come back per writer group through
// the function given to start(): onComplete(batches, results, failure, closeError) where
// `batches` is how many queued batches this group completes (in queue order), `results` holds
// [endOffset, lastCrc] for every mark of its append batches (when the group did not fail),
// `failure` is the segment's first write/sync error (the same object every time) or null, and
// `closeError` is undefined unless the group closed the file (then null or the close error).
// One call per group instead of a promise per batch keeps the JS thread's cost per append low.

class SegmentWrap : public Napi::ObjectWrap<SegmentWrap> {
 public:
  static void CallJs(Napi::Env env, Napi::Function callback, SegmentWrap* self, BatchGroup* group);
  using Tsfn = Napi::TypedThreadSafeFunction<SegmentWrap, BatchGroup, &SegmentWrap::CallJs>;

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeSegment",
                       {
                           InstanceMethod("start", &SegmentWrap::Start),
                           InstanceMethod("append", &SegmentWrap::Append),
                           InstanceMethod("sync", &SegmentWrap::Sync),
                           InstanceMethod("close", &SegmentWrap::Close),
                           InstanceMethod("testSetFault", &SegmentWrap::TestSetFault),
                           InstanceMethod("testHold", &SegmentWrap::TestHold),
                           InstanceMethod("testStats", &SegmentWrap::TestStats),
                       });
  }

  explicit SegmentWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SegmentWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(env, "NativeSegment is created by openSegment()");
    }
    core_.reset(info[0].As<Napi::External<Segment>>().Data());
    Napi::Object self = info.This().As<Napi::Object>();
    self.Set("path", Napi::String::New(env, core_->path()));
    self.Set("mode", Napi::String::New(env, wal_mode_name(core_->mode())));
    self.Set("modeReason", Napi::String::New(env, core_->mode_reason()));
    self.Set("blockSize", Napi::Number::New(env, core_->block_size()));
  }

  ~SegmentWrap() override {
    // Only reached without close() at environment teardown (or never started): stop the writer,
    // drop its queue.
    if (teardown_hook_) napi_remove_env_cleanup_hook(Env(), &SegmentWrap::OnEnvTeardown, this);
    if (core_) core_->abort();
  }

  // Environment teardown with the segment still open (the process exits without close()).
  // Registered after the thread-safe function, so it runs before the TSFN's own teardown
  // (cleanup hooks run last-in first-out): the writer is stopped and joined while the TSFN is
  // still valid, instead of releasing it after Node freed it (which aborted the process).
  static void OnEnvTeardown(void* arg) {
    auto* self = static_cast<SegmentWrap*>(arg);
    self->teardown_hook_ = false;
    if (self->core_) {
      self->core_->abort();
      self->core_->join();
    }
  }

 private:
  // start(onComplete): starts the writer thread.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (started_) throw Napi::Error::New(env, "NativeSegment already started");
    if (info.Length() < 1 || !info[0].IsFunction()) {
      throw Napi::TypeError::New(env, "start(onComplete: function)");
    }
    started_ = true;
    tsfn_ = Tsfn::New(env, info[0].As<Napi::Function>(), "raftkv:segment", 0, 1, this);
    tsfn_.Unref(env);  // an idle segment must not keep the process alive
    Tsfn tsfn = tsfn_;
    core_->start([tsfn](BatchGroup batches) mutable {
                   auto* group = new BatchGroup(std::move(batches));
                   if (tsfn.BlockingCall(group) != napi_ok) delete group;  // env is going away
                 },
                 [tsfn]() mutable { tsfn.Release(); });
    if (napi_add_env_cleanup_hook(env, &SegmentWrap::OnEnvTeardown, this) == napi_ok) teardown_hook_ = true;
    Ref();  // stays alive until close() completes: its writer thread refers to it
    return env.Undefined();
  }

  // append(buffer: External (from allocateFrameBuffer), size: number, marks: Float64Array,
  //        markCount: number, sync: boolean)
  // Queues frames[0, size) of the frame buffer as one batch. The frames must be laid out
  // completely (header with crc 0, payload, zero padding); `marks` are the ends of the appends
  // merged into it. Checked here; bad input throws and queues nothing.
  Napi::Value Append(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireOpen(env);
    if (info.Length() < 5 || !info[0].IsExternal() ||
        !info[0].As<Napi::External<SharedFrameBuffer>>().CheckTypeTag(&kFrameBufferTag) ||
        !info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      throw Napi::TypeError::New(env, "append(buffer: frame buffer handle, size, marks: Float64Array, markCount, sync)");
    }
    SharedFrameBuffer buffer = *info[0].As<Napi::External<SharedFrameBuffer>>().Data();
    if (buffer->queued) throw Napi::Error::New(env, "append: this frame buffer is still queued");
    size_t size = static_cast<size_t>(RequireNumber(info[1], "size", 0, static_cast<double>(buffer->capacity())));
    Napi::Float64Array marks = info[2].As<Napi::Float64Array>();
    size_t mark_count = static_cast<size_t>(RequireNumber(info[3], "markCount", 1, static_cast<double>(marks.ElementLength())));
    bool sync = info[4].ToBoolean().Value();

    auto batch = std::make_unique<Batch>();
    batch->kind = Batch::Kind::kAppend;
    batch->sync = sync;
    batch->size = size;
    batch->marks.resize(mark_count);
    const double* mark_values = marks.Data();
    for (size_t i = 0; i < mark_count; i++) {
      double mark = mark_values[i];
      if (!(mark >= 0 && mark <= static_cast<double>(size)) || mark != static_cast<double>(static_cast<uint64_t>(mark))) {
        throw Napi::RangeError::New(env, "append: marks must be integers in [0, size]");
      }
      batch->marks[i] = static_cast<uint64_t>(mark);
    }
    // Every frame whole with a sane header and crc 0; every non-empty append (up to its mark)
    // closed by exactly one COMMIT frame.
    std::string problem = check_append_layout(buffer->data(), size, batch->marks.data(), mark_count);
    if (!problem.empty()) throw Napi::RangeError::New(env, "append: " + problem);
    if (batch->marks[mark_count - 1] != size) {
      throw Napi::RangeError::New(env, "append: the last mark must be the size");
    }
    buffer->queued = true;
    batch->buffer = std::move(buffer);
    Submit(env, std::move(batch));
    return env.Undefined();
  }

  Napi::Value Sync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireOpen(env);
    auto batch = std::make_unique<Batch>();
    batch->kind = Batch::Kind::kSync;
    Submit(env, std::move(batch));
    return env.Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireOpen(env);
    closing_ = true;
    auto batch = std::make_unique<Batch>();
    batch->kind = Batch::Kind::kClose;
    Submit(env, std::move(batch));
    return env.Undefined();
  }

  // TEST ONLY: testSetFault('write' | 'fdatasync', 'EIO' | null).
  Napi::Value TestSetFault(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string op = RequireString(info[0], "op");
    int err = 0;
    if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined()) {
      std::string name = RequireString(info[1], "errno");
      err = errno_from_name(name);
      if (err == 0) throw Napi::RangeError::New(env, "unknown errno name " + name);
    }
    if (op == "write") core_->set_fault(Segment::FaultOp::kWrite, err);
    else if (op == "fdatasync") core_->set_fault(Segment::FaultOp::kSync, err);
    else throw Napi::RangeError::New(env, "fault op must be 'write' or 'fdatasync'");
    return env.Undefined();
  }

  // TEST ONLY: testHold(true) keeps the writer from picking up queued batches.
  Napi::Value TestHold(const Napi::CallbackInfo& info) {
    core_->set_hold(info[0].ToBoolean().Value());
    return info.Env().Undefined();
  }

  Napi::Value TestStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    SegmentStats stats = core_->stats();
    Napi::Object out = Napi::Object::New(env);
    out.Set("writes", Napi::Number::New(env, static_cast<double>(stats.writes)));
    out.Set("syncs", Napi::Number::New(env, static_cast<double>(stats.syncs)));
    out.Set("groups", Napi::Number::New(env, static_cast<double>(stats.groups)));
    return out;
  }

  void RequireOpen(Napi::Env env) {
    if (!started_) throw Napi::Error::New(env, "NativeSegment not started");
    if (closing_) {
      Napi::Error error = Napi::Error::New(env, "WAL segment " + core_->path() + " is closed");
      error.Set("code", Napi::String::New(env, "ECLOSED"));
      throw error;
    }
  }

  void Submit(Napi::Env env, std::unique_ptr<Batch> batch) {
    if (pending_++ == 0) tsfn_.Ref(env);
    core_->submit(std::move(batch));
  }

  void Complete(Napi::Env env, Napi::Function callback, BatchGroup* group) {
    Napi::HandleScope scope(env);
    std::unique_ptr<BatchGroup> owned(group);
    bool closed = false;
    Napi::Value close_error = env.Undefined();
    bool failed = false;
    size_t marks = 0;
    for (auto& batch : *group) {
      if (batch->kind == Batch::Kind::kClose) {
        closed = true;
        close_error = batch->error.ok() ? env.Null() : MakeSysError(env, batch->error).Value();
        continue;
      }
      if (!batch->error.ok()) {
        // The first failure is kept and reported as that same error object every time.
        if (failure_.IsEmpty()) failure_ = Napi::Persistent(MakeSysError(env, batch->error).Value());
        failed = true;
        continue;
      }
      if (batch->kind == Batch::Kind::kAppend) marks += batch->mark_results.size();
    }
    Napi::Float64Array results = Napi::Float64Array::New(env, failed ? 0 : marks * 2);
    if (!failed) {
      double* out = results.Data();
      for (auto& batch : *group) {
        if (batch->kind != Batch::Kind::kAppend) continue;
        for (const auto& mark : batch->mark_results) {
          *out++ = static_cast<double>(mark.first);
          *out++ = mark.second;
        }
      }
    }
    for (auto& batch : *group) {
      if (batch->buffer) batch->buffer->queued = false;
    }
    if (pending_ < group->size()) std::abort();  // invariant: every completed batch was submitted
    pending_ -= group->size();
    size_t count = group->size();
    owned.reset();  // frame buffers go back before JS reuses them
    if (closed) {
      core_->join();  // the writer's last act after this group was releasing the tsfn
      if (teardown_hook_) {
        napi_remove_env_cleanup_hook(env, &SegmentWrap::OnEnvTeardown, this);
        teardown_hook_ = false;
      }
    } else if (pending_ == 0) {
      tsfn_.Unref(env);
    }
    Napi::Value failure = failed ? failure_.Value() : env.Null();
    if (closed) Unref();
    try {
      callback.Call({Napi::Number::New(env, static_cast<double>(count)), results, failure, close_error});
    } catch (const Napi::Error& error) {
      // A throwing completion callback is a bug in the caller: surface it as an uncaught
      // exception rather than unwinding through Node's thread-safe-function dispatch.
      error.ThrowAsJavaScriptException();
    }
  }

  std::unique_ptr<Segment> core_;
  Tsfn tsfn_;
  size_t pending_ = 0;  // batches submitted and not yet completed
  Napi::ObjectReference failure_;
  bool started_ = false;
  bool closing_ = false;
  bool teardown_hook_ = false;  // OnEnvTeardown is registered
};

void SegmentWrap::CallJs(Napi::Env env, Napi::Function callback, SegmentWrap* self, BatchGroup* group) {
  if (env == nullptr || self == nullptr) {
    delete group;  // environment teardown
    return;
  }
  self->Complete(env, callback, group);
}

// ---------------------------------------------------------------------------------------------
// Module functions

Napi::Value Crc32c(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(env, "crc32c(data: Uint8Array, seed: number)");
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  uint32_t seed = info.Length() > 1
                      ? static_cast<uint32_t>(RequireNumber(info[1], "seed", 0, 4294967295.0))
                      : 0;
  return Napi::Number::New(env, crc32c_update(seed, data.Data(), data.ByteLength()));
}

Napi::Value Crc32cImplementation(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), crc32c_implementation());
}

Napi::Value CreateSegmentFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = RequireString(info[0], "path");
  uint64_t size = static_cast<uint64_t>(RequireNumber(info[1], "sizeBytes", 0, kMaxSafeInteger));
  std::string strategy_name = RequireString(info[2], "strategy");
  Preallocate strategy;
  if (strategy_name == "zero") strategy = Preallocate::kZero;
  else if (strategy_name == "fallocate") strategy = Preallocate::kFallocate;
  else if (strategy_name == "none") strategy = Preallocate::kNone;
  else throw Napi::RangeError::New(env, "strategy must be 'zero', 'fallocate' or 'none'");
  auto used = std::make_shared<std::string>();
  return PromiseWorker::Run(
      env, [=] { return create_segment_file(path, size, strategy, used.get()); },
      [used](Napi::Env e) { return Napi::String::New(e, *used); });
}

Napi::Value OpenSegment(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Segment::OpenRequest request;
  request.path = RequireString(info[0], "path");
  std::string mode = RequireString(info[1], "mode");
  if (!parse_wal_mode_option(mode, &request.mode)) {
    throw Napi::RangeError::New(env, "mode must be 'buffered', 'direct', 'dsync' or 'auto'");
  }
  request.offset = static_cast<uint64_t>(RequireNumber(info[2], "offset", 0, kMaxSafeInteger));
  request.prev_crc = static_cast<uint32_t>(RequireNumber(info[3], "prevCrc", 0, 4294967295.0));
  request.salt = static_cast<uint32_t>(RequireNumber(info[4], "salt", 0, 4294967295.0));
  auto opened = std::make_shared<std::unique_ptr<Segment>>();
  return PromiseWorker::Run(
      env, [request, opened] { return Segment::open(request, opened.get()); },
      [opened](Napi::Env e) -> Napi::Value {
        Segment* raw = opened->release();
        return e.GetInstanceData<Napi::FunctionReference>()->New(
            {Napi::External<Segment>::New(e, raw)});
      });
}

struct ScanJob {
  std::string path;
  uint32_t prev_crc = 0;
  uint8_t* bytes = nullptr;
  uint64_t size = 0;
  ScanOutcome outcome;
  ~ScanJob() { std::free(bytes); }
};

SysError RunScan(ScanJob* job) {
  SysError e = read_whole_file(job->path, &job->bytes, &job->size);
  if (!e.ok()) return e;
  job->outcome = scan_frames(job->bytes, job->size, job->prev_crc);
  return {};
}

Napi::Value ScanSegment(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto job = std::make_shared<ScanJob>();
  job->path = RequireString(info[0], "path");
  job->prev_crc = static_cast<uint32_t>(RequireNumber(info[1], "prevCrc", 0, 4294967295.0));
  return PromiseWorker::Run(
      env, [job] { return RunScan(job.get()); },
      [job](Napi::Env e) -> Napi::Value {
        const ScanOutcome& o = job->outcome;
        size_t n = o.frames.size();
        // The file's bytes go to JS without a copy; payloads are views into them.
        uint8_t* bytes = job->bytes;
        job->bytes = nullptr;
        Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(
            e, bytes, job->size > 0 ? static_cast<size_t>(job->size) : 0,
            [](Napi::Env, void* data) { std::free(data); });
        Napi::Float64Array offsets = Napi::Float64Array::New(e, n);
        Napi::Uint8Array types = Napi::Uint8Array::New(e, n);
        Napi::Uint32Array lengths = Napi::Uint32Array::New(e, n);
        Napi::Uint32Array crcs = Napi::Uint32Array::New(e, n);
        for (size_t i = 0; i < n; i++) {
          offsets[i] = static_cast<double>(o.frames[i].offset);
          types[i] = o.frames[i].type;
          lengths[i] = o.frames[i].length;
          crcs[i] = o.frames[i].crc;
        }
        Napi::Object out = Napi::Object::New(e);
        out.Set("fileBytes", Napi::Number::New(e, static_cast<double>(job->size)));
        out.Set("buffer", buffer);
        out.Set("offsets", offsets);
        out.Set("types", types);
        out.Set("lengths", lengths);
        out.Set("crcs", crcs);
        out.Set("validEndOffset", Napi::Number::New(e, static_cast<double>(o.valid_end_offset)));
        out.Set("lastCrc", Napi::Number::New(e, o.last_crc));
        out.Set("reason", Napi::String::New(e, stop_reason_name(o.reason)));
        out.Set("stopOffset", Napi::Number::New(e, static_cast<double>(o.stop_offset)));
        out.Set("detail", Napi::String::New(e, o.detail));
        if (o.later_commit_offset < 0) {
          out.Set("laterCommit", e.Null());
        } else {
          Napi::Object later = Napi::Object::New(e);
          later.Set("offset", Napi::Number::New(e, static_cast<double>(o.later_commit_offset)));
          later.Set("durableOffset", Napi::Number::New(e, static_cast<double>(o.later_commit_durable)));
          out.Set("laterCommit", later);
        }
        out.Set("headerError", o.header_error.empty() ? e.Null()
                                                      : Napi::String::New(e, o.header_error));
        return out;
      });
}

Napi::Value SyncDirectory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = RequireString(info[0], "path");
  DirSync result;
  SysError e = sync_directory(path, &result);
  if (!e.ok()) throw MakeSysError(env, e);
  Napi::Object out = Napi::Object::New(env);
  out.Set("supported", Napi::Boolean::New(env, result.supported));
  out.Set("errno", result.supported ? env.Null() : Napi::String::New(env, errno_name(result.err)));
  return out;
}

Napi::Value ProbeDirectIo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string dir = RequireString(info[0], "dir");
  DirectProbe probe;
  SysError e = probe_direct_io(dir, &probe);
  if (!e.ok()) throw MakeSysError(env, e);
  Napi::Object out = Napi::Object::New(env);
  out.Set("usable", Napi::Boolean::New(env, probe.usable));
  out.Set("blockSize", Napi::Number::New(env, probe.block_size));
  out.Set("reason", Napi::String::New(env, probe.reason));
  return out;
}

Napi::Value FilesystemType(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = RequireString(info[0], "path");
  std::string name;
  SysError e = filesystem_type(path, &name);
  if (!e.ok()) throw MakeSysError(env, e);
  return Napi::String::New(env, name);
}

Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = RequireString(info[0], "path");
  int fd = -1;
  SysError e = lock_file(path, &fd);
  if (!e.ok()) throw MakeSysError(env, e);
  return Napi::Number::New(env, fd);
}

Napi::Value Funlock(const Napi::CallbackInfo& info) {
  int fd = static_cast<int>(RequireNumber(info[0], "fd", 0, 2147483647.0));
  unlock_file(fd);
  return info.Env().Undefined();
}

// Gives this thread's CPU to another runnable thread, if any (the runtime's idle spin).
Napi::Value SchedYield(const Napi::CallbackInfo& info) {
  sched_yield();
  return info.Env().Undefined();
}

Napi::Value RawWriteSyncLoop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = RequireString(info[0], "path");
  uint32_t write_bytes = static_cast<uint32_t>(RequireNumber(info[1], "writeBytes", 1, 1 << 30));
  uint32_t iterations = static_cast<uint32_t>(RequireNumber(info[2], "iterations", 1, 10000000));
  std::string mode = info.Length() > 3 && !info[3].IsUndefined() ? RequireString(info[3], "mode")
                                                                 : "buffered";
  if (mode != "buffered" && mode != "direct") {
    throw Napi::RangeError::New(env, "mode must be 'buffered' or 'direct'");
  }
  bool direct = mode == "direct";
  if (direct && write_bytes % 512 != 0) {
    throw Napi::RangeError::New(env, "direct mode needs writeBytes to be a multiple of the block size");
  }
  struct Result {
    double seconds = 0;
    std::vector<double> latencies;
  };
  auto result = std::make_shared<Result>();
  result->latencies.resize(iterations);
  return PromiseWorker::Run(
      env,
      [=] {
        return raw_write_sync_loop(path, write_bytes, iterations, direct, &result->seconds,
                                   result->latencies.data());
      },
      [result](Napi::Env e) -> Napi::Value {
        Napi::Float64Array latencies = Napi::Float64Array::New(e, result->latencies.size());
        for (size_t i = 0; i < result->latencies.size(); i++) latencies[i] = result->latencies[i];
        Napi::Object out = Napi::Object::New(e);
        out.Set("seconds", Napi::Number::New(e, result->seconds));
        out.Set("latenciesUs", latencies);
        return out;
      });
}

// The frame-format constants this addon was built with (format.h): the loader compares them with
// src/wal/backend.ts FORMAT_CONSTANTS and refuses the addon when they differ.
Napi::Object FormatConstants(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("formatVersion", Napi::Number::New(env, kFormatVersion));
  out.Set("segmentMagic", Napi::String::New(env, std::string(kSegmentMagic, sizeof kSegmentMagic)));
  out.Set("frameHeaderBytes", Napi::Number::New(env, kFrameHeaderBytes));
  out.Set("recordBytesMax", Napi::Number::New(env, kRecordBytesMax));
  out.Set("segmentHeaderPayloadBytes", Napi::Number::New(env, kSegmentHeaderPayloadBytes));
  out.Set("commitPayloadBytes", Napi::Number::New(env, kCommitPayloadBytes));
  out.Set("typeSegmentHeader", Napi::Number::New(env, kTypeSegmentHeader));
  out.Set("typeMetadata", Napi::Number::New(env, kTypeMetadata));
  out.Set("typeEntry", Napi::Number::New(env, kTypeEntry));
  out.Set("typeHardState", Napi::Number::New(env, kTypeHardState));
  out.Set("typeSnapshot", Napi::Number::New(env, kTypeSnapshot));
  out.Set("typePad", Napi::Number::New(env, kTypePad));
  out.Set("typeCommit", Napi::Number::New(env, kTypeCommit));
  out.Freeze();
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function segment = SegmentWrap::Define(env);
  // Per-environment (worker threads each load their own instance).
  env.SetInstanceData<Napi::FunctionReference>(new Napi::FunctionReference(Napi::Persistent(segment)));

  exports.Set("crc32c", Napi::Function::New(env, Crc32c));
  exports.Set("crc32cImplementation", Napi::Function::New(env, Crc32cImplementation));
  exports.Set("createSegmentFile", Napi::Function::New(env, CreateSegmentFile));
  exports.Set("openSegment", Napi::Function::New(env, OpenSegment));
  exports.Set("scanSegment", Napi::Function::New(env, ScanSegment));
  exports.Set("syncDirectory", Napi::Function::New(env, SyncDirectory));
  exports.Set("probeDirectIo", Napi::Function::New(env, ProbeDirectIo));
  exports.Set("filesystemType", Napi::Function::New(env, FilesystemType));
  exports.Set("flock", Napi::Function::New(env, Flock));
  exports.Set("funlock", Napi::Function::New(env, Funlock));
  exports.Set("rawWriteSyncLoop", Napi::Function::New(env, RawWriteSyncLoop));
  exports.Set("schedYield", Napi::Function::New(env, SchedYield));
  exports.Set("allocateFrameBuffer", Napi::Function::New(env, AllocateFrameBuffer));
  exports.Set("NativeSegment", segment);
  exports.Set("formatConstants", FormatConstants(env));
  return exports;
}

}  // namespace
}  // namespace raftkv

static Napi::Object InitRaftkvNative(Napi::Env env, Napi::Object exports) {
  return raftkv::Init(env, exports);
}

NODE_API_MODULE(raftkv_native, InitRaftkvNative)
