package dev.wsproxy.benchmark;

import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

/**
 * What the connections of one run share: the stop flag, the round-trip recorder and the counters. A run ends when its
 * time is up or when {@code maxMessages} round trips are done, whichever comes first.
 */
final class RunState {

    private final Recorder latency = new Recorder(3);
    private final AtomicLong completed = new AtomicLong();
    private final AtomicLong bytes = new AtomicLong();
    private final AtomicLong errors = new AtomicLong();
    private final long maxMessages;
    private volatile boolean running = true;
    private final CountDownLatch stopped = new CountDownLatch(1);
    private volatile String firstError;

    RunState(long maxMessages) {
        this.maxMessages = maxMessages;
    }

    boolean running() {
        return running;
    }

    void stop() {
        running = false;
        stopped.countDown();
    }

    /** Waits until the run stops (time or message count) or {@code duration} has passed, whichever comes first. */
    void awaitStop(Duration duration) throws InterruptedException {
        stopped.await(duration.toNanos(), TimeUnit.NANOSECONDS);
    }

    /** Records one completed round trip of {@code payloadBytes}; tells whether the connection may send again. */
    boolean completed(long nanos, long payloadBytes) {
        latency.recordValue(Math.max(1, nanos));
        bytes.addAndGet(payloadBytes);
        if (completed.incrementAndGet() >= maxMessages) {
            stop();
        }
        return running;
    }

    void error(String what) {
        if (errors.getAndIncrement() == 0) {
            firstError = what;
        }
    }

    long completedCount() {
        return completed.get();
    }

    long bytes() {
        return bytes.get();
    }

    long errors() {
        return errors.get();
    }

    String firstError() {
        return firstError;
    }

    /** The round trips recorded since the previous call (the first call starts the measured window). */
    Histogram interval() {
        return latency.getIntervalHistogram();
    }
}
