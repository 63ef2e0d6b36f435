package dev.wsproxy;

import java.io.IOException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The gate a frozen peer of a test waits behind, in a fixture's thread: it throws only {@link IOException}, which the
 * fixtures record as the end of a connection (an exception of another kind would escape their thread, and awaitility
 * fails the next {@code await} with it).
 */
final class Thaw {

    private final CountDownLatch latch = new CountDownLatch(1);

    /** Lets every waiting peer go on; the tests call it in their tear-down too. */
    void release() {
        latch.countDown();
    }

    /** Waits for {@link #release()}, at most a minute. */
    void await() throws IOException {
        try {
            if (!latch.await(60, TimeUnit.SECONDS)) {
                throw new IOException("never thawed");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
    }
}
