package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.eclipse.jetty.io.ArrayByteBufferPool;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Many sessions closing at once while the backend is slow to answer: each client leg holds the client's close frame
 * until the backend's reply arrives, and with it the network buffer the frame was read into. That buffer must be a
 * small one, or a fleet leaving at once pins 64 KiB per session (and the pool and the allocator keep it afterwards).
 */
class MassCloseMemoryTest {

    private static final int SESSIONS = 64;

    private RawBackend backend;
    private Server server;
    private WebSocketProxy proxy;
    private final List<RawWebSocket> clients = new ArrayList<>();

    @AfterEach
    void tearDown() throws Exception {
        for (RawWebSocket client : clients) {
            client.close();
        }
        if (server != null) {
            server.stop();
        }
        if (backend != null) {
            backend.close();
        }
    }

    @Test
    void sessionsClosingAtOnceHoldSmallBuffersUntilTheBackendAnswers() throws Exception {
        CountDownLatch closesRelayed = new CountDownLatch(SESSIONS);
        CountDownLatch answer = new CountDownLatch(1);
        backend = RawBackend.upgradingThen((socket, out) -> {
            // Read the close the proxy relays, then hold the reply back until the test has looked at the pool.
            RawFrames.Frame close = RawFrames.read(socket.getInputStream());
            closesRelayed.countDown();
            try {
                answer.await();
            } catch (InterruptedException e) {
                throw new IOException(e);
            }
            RawFrames.write(out, RawFrames.encode(RawFrames.CLOSE, close.payload(), false));
        });
        ArrayByteBufferPool.Tracking pool = new ArrayByteBufferPool.Tracking();
        server = new Server(new QueuedThreadPool(), null, pool);
        ServerConnector connector = WebSocketProxy.serverConnector(server);
        connector.setHost("127.0.0.1");
        server.addConnector(connector);
        proxy = ProxyBuilder.create().route("/", backend.backend()).build();
        server.setHandler(proxy.handler());
        server.start();
        URI uri = URI.create("ws://127.0.0.1:" + connector.getLocalPort() + "/chat");

        for (int i = 0; i < SESSIONS; i++) {
            clients.add(RawWebSocket.connect(uri));
        }
        for (RawWebSocket client : clients) {
            client.sendClose(1000, "leaving");
        }
        assertThat(closesRelayed.await(10, TimeUnit.SECONDS)).as("every close relayed to the backend").isTrue();

        // Every session now holds its client's close frame: what the pool has handed out and not had back.
        long held = pool.getLeaks().stream().mapToLong(buffer -> buffer.capacity()).sum();
        assertThat(held / SESSIONS).as("bytes held per closing session").isLessThanOrEqualTo(8 * 1024);

        answer.countDown();
        for (RawWebSocket client : clients) {
            RawWebSocket.Frame reply = client.readClose();
            assertThat(reply.closeCode()).isEqualTo(1000);
            assertThat(reply.text()).isEqualTo("leaving");
        }
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
            assertThat(proxy.sessions()).as("proxy sessions").isEmpty();
            assertThat(pool.getLeaks()).as("buffers not given back").isEmpty();
        });
    }
}
