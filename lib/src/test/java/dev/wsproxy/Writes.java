package dev.wsproxy;

import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * A blocking write repeated on a thread of its own, as fast as the socket takes it: a peer that writes until the
 * proxy holds it back. {@link #done} completes after the last write and fails with the first write that fails.
 */
final class Writes {

    /** A blocking write. */
    @FunctionalInterface
    interface Write {
        void run() throws IOException;
    }

    final CompletableFuture<Void> done = new CompletableFuture<>();

    private Writes() {
    }

    /** Starts {@code count} writes on a daemon thread named {@code name}. */
    static Writes start(String name, int count, Write write) {
        Writes writes = new Writes();
        Thread thread = new Thread(() -> {
            try {
                for (int i = 0; i < count; i++) {
                    write.run();
                }
                writes.done.complete(null);
            } catch (Throwable e) {
                writes.done.completeExceptionally(e);
            }
        }, name);
        thread.setDaemon(true);
        thread.start();
        return writes;
    }

    /** Fails unless the writes end, all done or one failed, within {@code atMost}. */
    void awaitEnd(String what, Duration atMost) {
        await(what).atMost(atMost).until(done::isDone);
    }
}
