package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A blocking write repeated on a thread of its own, as fast as the socket takes it: a peer that writes until the
 * proxy holds it back. {@link #done} completes after the last write and fails with the first write that fails.
 */
final class Writes {

    /** A blocking write; {@code index} counts the writes from 0. */
    @FunctionalInterface
    interface Write {
        void run(int index) throws IOException;
    }

    final CompletableFuture<Void> done = new CompletableFuture<>();
    private final AtomicLong written = new AtomicLong();
    private volatile boolean stopped;
    private Thread thread;

    private Writes() {
    }

    /** Starts at most {@code count} writes on a daemon thread named {@code name}. */
    static Writes start(String name, int count, Write write) {
        Writes writes = new Writes();
        writes.thread = new Thread(() -> {
            try {
                for (int i = 0; i < count && !writes.stopped; i++) {
                    write.run(i);
                    writes.written.incrementAndGet();
                }
                writes.done.complete(null);
            } catch (Throwable e) {
                writes.done.completeExceptionally(e);
            }
        }, name);
        writes.thread.setDaemon(true);
        writes.thread.start();
        return writes;
    }

    /** How many writes have returned. */
    long written() {
        return written.get();
    }

    /** Starts no write after the one under way, if any. */
    void stop() {
        stopped = true;
    }

    /**
     * Waits until the writes stop completing (two equal counts half a second apart, after at least one write) and
     * checks that they were held back, not done; returns how many had returned.
     */
    long awaitHeldBack(String what, Duration atMost) {
        long[] last = {-1};
        await(what).atMost(atMost).pollInterval(Duration.ofMillis(500)).until(() -> {
            long now = written.get();
            boolean stalled = now > 0 && now == last[0];
            last[0] = now;
            return stalled;
        });
        assertThat(done).as(what).isNotDone();
        return written.get();
    }

    /** Fails unless the writes end, all done or one failed, within {@code atMost}. */
    void awaitEnd(String what, Duration atMost) {
        await(what).atMost(atMost).until(done::isDone);
    }

    /** Fails unless the writing thread has ended within {@code atMost}. */
    void join(Duration atMost) throws InterruptedException {
        thread.join(atMost.toMillis());
        assertThat(thread.isAlive()).as("thread %s ended", thread.getName()).isFalse();
    }
}
