package dev.wsproxy.benchmark;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

import org.HdrHistogram.Histogram;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.websocket.core.CloseStatus;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.FrameHandler;
import org.eclipse.jetty.websocket.core.OpCode;

/**
 * Runs one workload against one target and measures it. Every run is bounded twice: by time (warm-up, window and
 * close deadlines) and by count ({@code maxMessages} round trips or handshake cycles, a fixed number of connections).
 *
 * <p>The measured window starts after the run's own warm-up: the counters, the latency histogram and the target's
 * CPU time are read at its start and at its end, so connection set-up and tear-down never count. Without a warm-up
 * (the tests' short runs) the window opens before the first message or cycle starts: reading the target's counters
 * takes two admin-port round trips, time in which a short run could otherwise end unmeasured.
 */
final class Runs {

    /** Connections being opened at once (ramps of idle holds and of echo runs). */
    static final int DEFAULT_CONNECT_CONCURRENCY = 64;

    private final LoadClient client;
    private final int connectConcurrency;
    private final long maxMessages;

    Runs(LoadClient client, int connectConcurrency, long maxMessages) {
        this.client = client;
        this.connectConcurrency = connectConcurrency;
        this.maxMessages = maxMessages;
    }

    static ByteBuffer payload(boolean text, int size) {
        byte[] bytes = new byte[size];
        if (text) {
            byte[] alphabet = "abcdefghijklmnopqrstuvwxyz0123456789".getBytes(StandardCharsets.US_ASCII);
            for (int i = 0; i < size; i++) {
                bytes[i] = alphabet[i % alphabet.length];
            }
        } else {
            for (int i = 0; i < size; i++) {
                bytes[i] = (byte) (i * 31 + 7);
            }
        }
        return ByteBuffer.wrap(bytes).asReadOnlyBuffer();
    }

    /** The workload's connections, opened and ready to send its message (none sent yet). */
    private List<EchoConnection> openEchoes(Target target, RunState state, Workload workload, EchoConnection.Mode mode)
            throws InterruptedException {
        ByteBuffer payload = payload(workload.text(), workload.size());
        byte opCode = workload.text() ? OpCode.TEXT : OpCode.BINARY;
        return open(target, state, workload.connections(), () -> new EchoConnection(state, opCode, payload, mode),
                c -> CompletableFuture.completedFuture(c));
    }

    // ---- closed-loop echo ----

    RunResult echo(Target target, Workload workload, int rep, Duration warmup, Duration window) throws Exception {
        RunState state = new RunState(maxMessages);
        List<EchoConnection> connections = openEchoes(target, state, workload, EchoConnection.Mode.CLOSED_LOOP);
        try {
            Measure measure = warmup.isZero() ? Measure.start(target, state) : null;
            for (EchoConnection c : connections) {
                c.start();
            }
            if (measure == null) {
                state.awaitStop(warmup);
                measure = Measure.start(target, state);
            }
            state.awaitStop(window);
            Map<String, Double> metrics = measure.stop(workload.size());
            return new RunResult(workload, target.name(), rep, metrics, state.errors(), state.firstError());
        } finally {
            state.stop();
            closeAll(connections);
        }
    }

    // ---- open-loop echo ----

    /**
     * A window sent less than this share of the rate (or echoed less than this share of what it sent), and more than
     * {@link #SLACK} of messages short: it did not measure that rate.
     */
    static final double KEPT_UP = 0.98;
    /** Messages a window may be short whatever its share: this long at the rate (the start of a short window). */
    static final Duration SLACK = Duration.ofMillis(50);
    /** A message that has waited this long for its echo at the end of a window: the target has stalled. */
    static final Duration STALLED = Duration.ofSeconds(1);

    /**
     * The echo at the workload's fixed rate (see {@link Pacer}): the round trips of the messages echoed in the window,
     * the rate actually sent and how late the pacer was beside the rate echoed. A window is an error, and says why,
     * when the pacer did not send the rate (the generator's core is short), when the target echoed less than it was
     * sent, when a message has waited for its echo for {@link #STALLED} at its end, or when a connection refused a
     * message (closed, or {@link EchoConnection#MAX_IN_FLIGHT} messages unanswered on it: that ends the run).
     */
    RunResult paced(Target target, Workload workload, int rep, Duration warmup, Duration window) throws Exception {
        RunState state = new RunState(maxMessages);
        List<EchoConnection> connections = openEchoes(target, state, workload, EchoConnection.Mode.PACED);
        Thread thread = null;
        try {
            if (connections.isEmpty()) {
                return new RunResult(workload, target.name(), rep, RunResult.newMetrics(), state.errors(),
                        state.firstError());
            }
            Pacer pacer = new Pacer(workload.rate(), connections.size(), i -> connections.get(i).sendNow(),
                    state::running);
            thread = new Thread(() -> {
                pacer.run();
                if (pacer.refused()) {
                    state.error("a connection refused a message: closed, or " + EchoConnection.MAX_IN_FLIGHT
                            + " messages unanswered on it");
                    state.stop();
                }
            }, "pacer");
            thread.setDaemon(true);
            thread.start();
            state.awaitStop(warmup);
            Measure measure = Measure.start(target, state);
            long sentBefore = pacer.sent();
            pacer.takeLag();
            long startNanos = System.nanoTime();
            state.awaitStop(window);
            long sent = pacer.sent() - sentBefore;
            double seconds = (System.nanoTime() - startNanos) / 1e9;
            long stalled = connections.stream().mapToLong(EchoConnection::oldestWaitNanos).max().orElse(0);
            Map<String, Double> metrics = measure.stop(workload.size());
            Histogram lag = pacer.takeLag();
            double sentPerSecond = sent / seconds;
            double echoedPerSecond = metrics.get(RunResult.MSG_PER_S);
            metrics.put(RunResult.SENT_PER_S, sentPerSecond);
            metrics.put(RunResult.PACER_LAG_P99_MS, lag.getValueAtPercentile(99) / 1e6);
            metrics.put(RunResult.PACER_LAG_MAX_MS, lag.getMaxValue() / 1e6);
            if (fellShort(sentPerSecond, workload.rate(), seconds, workload.rate())) {
                state.error(String.format(Locale.ROOT, "the generator sent %.0f of %d msg/s: its core is short",
                        sentPerSecond, workload.rate()));
            }
            if (fellShort(echoedPerSecond, sentPerSecond, seconds, workload.rate())) {
                state.error(String.format(Locale.ROOT, "the target echoed %.0f of the %.0f msg/s it was sent",
                        echoedPerSecond, sentPerSecond));
            }
            if (stalled >= STALLED.toNanos()) {
                state.error(String.format(Locale.ROOT, "a message had waited %.0f ms for its echo at the window's end",
                        stalled / 1e6));
            }
            return new RunResult(workload, target.name(), rep, metrics, state.errors(), state.firstError());
        } finally {
            state.stop();
            if (thread != null) {
                thread.join(TimeUnit.SECONDS.toMillis(5));
            }
            closeAll(connections);
        }
    }

    /** Whether {@code perSecond} fell short of {@code expected} by both {@link #KEPT_UP} and {@link #SLACK}. */
    private static boolean fellShort(double perSecond, double expected, double seconds, int rate) {
        double missing = (expected - perSecond) * seconds;
        return perSecond < KEPT_UP * expected && missing > rate * SLACK.toNanos() / 1e9;
    }

    // ---- handshake storm ----

    RunResult storm(Target target, Workload workload, int rep, Duration warmup, Duration window) throws Exception {
        RunState state = new RunState(maxMessages);
        ByteBuffer payload = payload(true, workload.size());
        Set<StormCycle> live = ConcurrentHashMap.newKeySet();
        CountDownLatch stopped = new CountDownLatch(workload.connections());
        Measure measure = warmup.isZero() ? Measure.start(target, state) : null;
        for (int i = 0; i < workload.connections(); i++) {
            new StormWorker(target, state, payload, live, stopped).next();
        }
        try {
            if (measure == null) {
                state.awaitStop(warmup);
                measure = Measure.start(target, state);
            }
            state.awaitStop(window);
            Map<String, Double> metrics = measure.stop(workload.size());
            return new RunResult(workload, target.name(), rep, metrics, state.errors(), state.firstError());
        } finally {
            state.stop();
            if (!stopped.await(15, TimeUnit.SECONDS)) {
                live.forEach(StormCycle::abort);
            }
        }
    }

    /** Runs handshake cycles one after another until the run stops. */
    private final class StormWorker {
        private final Target target;
        private final RunState state;
        private final ByteBuffer payload;
        private final Set<StormCycle> live;
        private final CountDownLatch stopped;

        StormWorker(Target target, RunState state, ByteBuffer payload, Set<StormCycle> live, CountDownLatch stopped) {
            this.target = target;
            this.state = state;
            this.payload = payload;
            this.live = live;
            this.stopped = stopped;
        }

        void next() {
            if (!state.running()) {
                stopped.countDown();
                return;
            }
            StormCycle cycle = new StormCycle(this, System.nanoTime());
            live.add(cycle);
            client.connect(target.uri(), cycle).whenComplete((session, failure) -> {
                if (failure != null) {
                    live.remove(cycle);
                    state.error("connect failed: " + failure);
                    // Do not spin on a refusing target.
                    client.scheduler().schedule(this::next, 10, TimeUnit.MILLISECONDS);
                } else {
                    session.sendFrame(new Frame(OpCode.TEXT, true, payload.slice()), Callback.NOOP, false);
                }
            });
        }

        void cycleDone(StormCycle cycle, boolean echoed, CloseStatus status) {
            live.remove(cycle);
            if (echoed) {
                state.completed(System.nanoTime() - cycle.start, payload.remaining());
            } else {
                state.error("closed before the echo: " + status);
            }
            next();
        }
    }

    /** One connect, echo, close cycle. */
    private static final class StormCycle implements FrameHandler {
        private final StormWorker worker;
        final long start;
        private volatile CoreSession session;
        private boolean echoed;

        StormCycle(StormWorker worker, long start) {
            this.worker = worker;
            this.start = start;
        }

        void abort() {
            CoreSession s = session;
            if (s != null) {
                s.abort();
            }
        }

        @Override
        public void onOpen(CoreSession coreSession, Callback callback) {
            session = coreSession;
            callback.succeeded();
            coreSession.demand();
        }

        @Override
        public void onFrame(Frame frame, Callback callback) {
            if (frame.getOpCode() == OpCode.CLOSE) {
                callback.succeeded();
                return;
            }
            boolean done = frame.isDataFrame() && frame.isFin();
            callback.succeeded();
            if (done && !echoed) {
                echoed = true;
                session.close(CloseStatus.NORMAL, null, Callback.NOOP);
            }
            // Keep reading: the close reply must come in.
            session.demand();
        }

        @Override
        public void onError(Throwable cause, Callback callback) {
            callback.succeeded();
        }

        @Override
        public void onClosed(CloseStatus closeStatus, Callback callback) {
            callback.succeeded();
            worker.cycleDone(this, echoed, closeStatus);
        }
    }

    // ---- idle hold ----

    /**
     * Holds {@code count} connections. Heap growth is measured from a GC just before the hold to a GC during it.
     * RSS growth is measured from {@code baseline}, the target's RSS before the first measured run: both proxies'
     * allocators keep memory freed by earlier runs and reuse it, so growth from just before each hold would count
     * less and less with every repetition.
     */
    RunResult idle(Target target, Workload workload, int count, int rep, Duration settle, ProcStats.Sample baseline)
            throws Exception {
        RunState state = new RunState(Long.MAX_VALUE);
        ByteBuffer payload = payload(true, workload.size());
        long heapBefore = heap(target);
        ProcStats.Sample before = target.pid() > 0 ? ProcStats.sample(target.pid()) : null;
        long openStart = System.nanoTime();
        // Each connection proves its two legs with one echo, then stays idle.
        List<EchoConnection> connections = open(target, state, count,
                () -> new EchoConnection(state, OpCode.TEXT, payload, EchoConnection.Mode.PROBE), c -> {
                    c.start();
                    return c.firstEcho;
                });
        double openSeconds = (System.nanoTime() - openStart) / 1e9;
        try {
            ProcStats.Sample held = target.pid() > 0 ? ProcStats.sample(target.pid()) : null;
            long heldStart = System.nanoTime();
            // A fixed quiet period, not a wait for an event: the held connections sit idle before memory is sampled.
            Thread.sleep(settle.toMillis());
            // Before the heap figure, whose full GC would count.
            ProcStats.Sample settled = held != null ? ProcStats.sample(target.pid()) : null;
            long heldNanos = System.nanoTime() - heldStart;
            long established = state.completedCount();
            Map<String, Double> metrics = RunResult.newMetrics();
            metrics.put(RunResult.CONNECTIONS, (double) established);
            metrics.put(RunResult.OPEN_PER_S, established / openSeconds);
            long heapAfter = heap(target);
            if (before != null && established > 0) {
                ProcStats.Sample after = ProcStats.sample(target.pid());
                long rssFrom = baseline != null ? baseline.rssBytes() : before.rssBytes();
                double rss = (after.rssBytes() - rssFrom) / 1024.0 / established;
                metrics.put(RunResult.RSS_KIB_PER_CONN, rss);
                double memory = rss;
                if (heapBefore >= 0 && heapAfter >= 0) {
                    double heap = (heapAfter - heapBefore) / 1024.0 / established;
                    metrics.put(RunResult.HEAP_KIB_PER_CONN, heap);
                    if (target.pretouch()) {
                        memory += heap;
                    }
                }
                metrics.put(RunResult.MEM_KIB_PER_CONN, memory);
                metrics.put(RunResult.THREADS_BEFORE, (double) before.threads());
                metrics.put(RunResult.THREADS, (double) after.threads());
                metrics.put(RunResult.HOLD_CORE_PERCENT, 100.0 * (settled.cpuNanos() - held.cpuNanos()) / heldNanos);
            }
            return new RunResult(workload, target.name(), rep, metrics, state.errors(), state.firstError());
        } finally {
            state.stop();
            closeAll(connections);
        }
    }

    private static long heap(Target target) {
        if (target.adminPort() < 0) {
            return -1;
        }
        try {
            return AdminPort.queryHeap(target.uri().getHost(), target.adminPort());
        } catch (IOException e) {
            System.err.println("warning: no heap figure from " + target.name() + ": " + e);
            return -1;
        }
    }

    // ---- shared ----

    interface Factory {
        EchoConnection create();
    }

    interface AfterOpen {
        CompletableFuture<?> apply(EchoConnection connection);
    }

    /**
     * Opens {@code count} connections, at most {@link #connectConcurrency} handshakes at a time, each slot freed when
     * {@code afterOpen}'s future completes. Bounded by a deadline; failures are counted as errors and left out.
     */
    private List<EchoConnection> open(Target target, RunState state, int count, Factory factory, AfterOpen afterOpen)
            throws InterruptedException {
        EchoConnection[] opened = new EchoConnection[count];
        AtomicInteger nextIndex = new AtomicInteger();
        CountDownLatch finished = new CountDownLatch(count);
        Runnable[] launch = new Runnable[1];
        launch[0] = () -> {
            int i = nextIndex.getAndIncrement();
            if (i >= count) {
                return;
            }
            EchoConnection connection = factory.create();
            client.connect(target.uri(), connection).thenCompose(session -> afterOpen.apply(connection))
                    .whenComplete((ignored, failure) -> {
                        if (failure != null) {
                            state.error("connect failed: " + failure);
                        } else {
                            opened[i] = connection;
                        }
                        finished.countDown();
                        // Not inline: a future that is already complete would recurse.
                        client.execute(launch[0]);
                    });
        };
        for (int i = 0; i < Math.min(connectConcurrency, count); i++) {
            client.execute(launch[0]);
        }
        long deadlineMillis = 30_000 + count * 5L;
        if (!finished.await(deadlineMillis, TimeUnit.MILLISECONDS)) {
            state.error("only " + (count - finished.getCount()) + " of " + count + " connections in "
                    + deadlineMillis + " ms");
        }
        List<EchoConnection> list = new ArrayList<>(count);
        Arrays.stream(opened).filter(c -> c != null).forEach(list::add);
        return list;
    }

    /** Closes every connection with a close handshake; drops those that have not finished within 20 s. */
    private static void closeAll(List<EchoConnection> connections) throws InterruptedException {
        for (EchoConnection c : connections) {
            c.close();
        }
        CompletableFuture<?>[] closed = connections.stream().map(c -> c.closed).toArray(CompletableFuture[]::new);
        try {
            CompletableFuture.allOf(closed).get(20, TimeUnit.SECONDS);
        } catch (TimeoutException | java.util.concurrent.ExecutionException e) {
            int aborted = 0;
            for (EchoConnection c : connections) {
                if (!c.closed.isDone()) {
                    c.abort();
                    aborted++;
                }
            }
            System.err.println("warning: " + aborted + " connections did not close in 20 s; dropped");
        }
    }

    /** The start of a measured window: counters, histogram and the target's CPU time. */
    private record Measure(Target target, RunState state, long startNanos, long startCount, long startBytes,
            ProcStats.Sample startSample, long startAllocated, long startJit) {

        static Measure start(Target target, RunState state) {
            long allocated = allocated(target);
            long jit = jitMillis(target);
            state.interval();
            ProcStats.Sample sample = target.pid() > 0 ? ProcStats.sample(target.pid()) : null;
            return new Measure(target, state, System.nanoTime(), state.completedCount(), state.bytes(), sample,
                    allocated, jit);
        }

        /** The target JVM's allocated bytes through its admin port; -1 without one. */
        private static long allocated(Target target) {
            return ask(target, AdminPort::queryAllocated);
        }

        /** The target JVM's JIT compilation time so far, through its admin port; -1 without one. */
        private static long jitMillis(Target target) {
            return ask(target, AdminPort::queryJitMillis);
        }

        /** One question to the target's admin port; -1 without one, or when it does not answer. */
        private static long ask(Target target, AdminPort.Query query) {
            if (target.adminPort() < 0) {
                return -1;
            }
            try {
                return query.ask(target.uri().getHost(), target.adminPort());
            } catch (IOException e) {
                return -1;
            }
        }

        Map<String, Double> stop(int size) {
            long count = state.completedCount() - startCount;
            long bytes = state.bytes() - startBytes;
            Histogram histogram = state.interval();
            ProcStats.Sample end = startSample != null ? ProcStats.sample(target.pid()) : null;
            double seconds = (System.nanoTime() - startNanos) / 1e9;
            long allocatedEnd = startAllocated >= 0 ? allocated(target) : -1;
            long jitEnd = startJit >= 0 ? jitMillis(target) : -1;
            Map<String, Double> metrics = RunResult.newMetrics();
            metrics.put(RunResult.MSG_PER_S, count / seconds);
            metrics.put(RunResult.MB_PER_S, bytes / seconds / 1e6);
            metrics.put(RunResult.P50_US, histogram.getValueAtPercentile(50) / 1e3);
            metrics.put(RunResult.P99_US, histogram.getValueAtPercentile(99) / 1e3);
            metrics.put(RunResult.P999_US, histogram.getValueAtPercentile(99.9) / 1e3);
            if (end != null && count > 0) {
                long cpu = end.cpuNanos() - startSample.cpuNanos();
                metrics.put(RunResult.CPU_US_PER_MSG, cpu / 1e3 / count);
                metrics.put(RunResult.CORE_PERCENT, 100.0 * cpu / (seconds * 1e9));
                metrics.put(RunResult.CSW_PER_MSG,
                        (double) (end.contextSwitches() - startSample.contextSwitches()) / count);
            }
            if (allocatedEnd >= 0 && count > 0) {
                metrics.put(RunResult.ALLOC_PER_MSG, (double) (allocatedEnd - startAllocated) / count);
            }
            if (jitEnd >= 0) {
                metrics.put(RunResult.JIT_MS, (double) (jitEnd - startJit));
            }
            return metrics;
        }
    }
}
