package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.nio.charset.StandardCharsets;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A client that stops reading must hold back the backend through TCP: the proxy buffers at most a frame per
 * direction. The proxy runs in a forked JVM with a 64 MiB heap and 64 MiB of direct memory while the backend pushes
 * 256 MiB at a client that does not read; an unbounded buffer would kill it with an OutOfMemoryError.
 */
class SlowReaderMemoryTest {

    private static final int MESSAGES = 4096;
    private static final int MESSAGE_SIZE = 64 * 1024;
    private static final long TOTAL = (long) MESSAGES * MESSAGE_SIZE; // 256 MiB

    private TestBackend backend;
    private ForkedProxy proxy;

    @BeforeEach
    void start() throws Exception {
        backend = new TestBackend("pusher");
        proxy = ForkedProxy.start(backend.uri());
    }

    @AfterEach
    void stop() throws Exception {
        proxy.close();
        backend.close();
    }

    @Test
    void holdsBackTheBackendWhileTheClientDoesNotRead() throws Exception {
        URI uri = proxy.ws("/push");
        try (RawWebSocket client = RawWebSocket.connect(uri, 64 * 1024)) {
            client.send(true, RawWebSocket.TEXT, ("push:" + MESSAGES + ":" + MESSAGE_SIZE)
                    .getBytes(StandardCharsets.UTF_8));

            // Wait until the backend can send no more: its writes stall once every buffer on the way is full.
            long stalledAt = backend.awaitPushStalled();
            assertThat(stalledAt).as("bytes the backend could send to a client that reads nothing")
                    .isLessThan(32L * 1024 * 1024);
            long heap = proxy.assertHeapBounded("while stalled");
            // The figures docs/security.md quotes.
            System.out.printf("slow reader: backend stalled after %d KiB; proxy heap after GC %d KiB%n",
                    stalledAt / 1024, heap / 1024);

            // The client reads again: everything arrives, and the proxy survived it.
            long received = 0;
            int messages = 0;
            while (received < TOTAL) {
                RawWebSocket.Frame frame = client.read();
                received += frame.payload().length;
                if (frame.fin()) {
                    messages++;
                }
            }
            assertThat(received).isEqualTo(TOTAL);
            assertThat(messages).isEqualTo(MESSAGES);
            assertThat(proxy.isAlive()).isTrue();
            client.sendClose(1000, "");
            assertThat(client.readClose().closeCode()).isEqualTo(1000);
        }
    }
}
