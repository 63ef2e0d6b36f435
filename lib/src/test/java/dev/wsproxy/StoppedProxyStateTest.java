package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.SoftAssertions.assertSoftly;
import static org.awaitility.Awaitility.await;

import java.io.EOFException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;
import java.util.stream.Stream;

import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.jspecify.annotations.Nullable;
import org.junit.jupiter.api.Test;

import dev.wsproxy.internal.WebSocketProxyHandler;

/**
 * What a stopped proxy leaves behind (matrix row D3): nothing. A proxy serves a clean session, one whose client
 * vanishes with a reset, a handshake the backend refuses ({@code 403}), one the proxy refuses ({@code 426}) and a
 * session still open at the stop, then stops; it holds no session, connection slot or backend count, every thread
 * started since just before it started has ended, the JVM has no more sockets, pipes and epoll or event descriptors
 * open than before it started (on Linux, where {@code /proc/self/fd} lists them), its port can be bound at once by a
 * plain {@code ServerSocket}, and a proxy derived with {@code toBuilder()} on that port starts and relays. Mounted in
 * an application's {@code Server}, stopping the proxy ends its sessions and leaves the server running and serving
 * (upgrades refused with {@code 503}, other requests to the application); stopping the server then leaves the same
 * clean state. So does a {@code start()} that fails, at the bind (a port in use) or once the server's threads run (the
 * handler failing to start), and the same proxy then starts. A proxy derived with {@code toBuilder()} shares the next
 * handler: it is refused, naming it, while the first runs, and starts with it once the first stopped.
 *
 * <p>Peers are raw sockets ({@link RawWebSocket}, {@link RawBackend}), which start no thread pool of their own, so
 * every thread left over is the proxy's (or a raw backend's connection thread, which ends only when the proxy closed
 * its connection). A first cycle of the same workload runs before the measured one, so that what the JVM starts or
 * opens once for good is in the baseline.
 */
class StoppedProxyStateTest {

    /** What a test started, stopped after it in reverse order even when it failed half-way. */
    private final List<AutoCloseable> started = new ArrayList<>();
    private RawBackend echo;
    private RawBackend refusing;

    @BeforeEach
    void start() throws Exception {
        echo = RawBackend.answering(RawBackend.switching(null));
        refusing = RawBackend.answering(RawBackend.raw("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"));
    }

    @AfterEach
    void stop() throws Exception {
        Collections.reverse(started);
        for (AutoCloseable resource : started) {
            resource.close();
        }
        echo.close();
        refusing.close();
    }

    private WebSocketProxy standalone(ProxyBuilder builder) throws IOException {
        WebSocketProxy proxy = builder.build();
        started.add(proxy);
        proxy.start();
        return proxy;
    }

    private ProxyBuilder builder() {
        return ProxyBuilder.create().route("/ws/", echo.backend()).route("/refused/", refusing.backend());
    }

    @Test
    void leavesNoSessionThreadOrDescriptorAndFreesItsPort() throws Exception {
        WebSocketProxy warmUp = standalone(builder().listen("127.0.0.1", 0));
        runSessions(warmUp.uri().getPort(), warmUp);
        stopWithASessionOpen(warmUp.uri().getPort(), warmUp);

        Set<Thread> baseline = liveThreads();
        Map<String, Long> descriptors = openDescriptors();
        WebSocketProxy proxy = standalone(builder().listen("127.0.0.1", 0));
        int port = proxy.uri().getPort();
        runSessions(port, proxy);
        assertThat(threadsSince(baseline)).as("threads started with the proxy")
                .anyMatch(name -> name.startsWith("wsproxy"));
        stopWithASessionOpen(port, proxy);

        assertThat(proxy.sessions()).as("sessions once stop() returned").isEmpty();
        assertThat(((WebSocketProxyHandler) proxy.handler()).held()).as("slots and counts once stop() returned")
                .isEqualTo(new WebSocketProxyHandler.Held(0, 0, 0, 0));
        try (ServerSocket again = new ServerSocket()) {
            again.bind(new InetSocketAddress("127.0.0.1", port));
        }
        assertBackToBaseline(baseline, descriptors);

        WebSocketProxy next = standalone(proxy.toBuilder().listen("127.0.0.1", port));
        assertThat(next.uri().getPort()).isEqualTo(port);
        cleanSession(port, "/ws/next");
        Clients.assertNoLeaks(next, null);
    }

    @Test
    void aStartThatFailsLeavesNothingAndTheProxyCanStartAgain() throws Exception {
        try (ServerSocket taken = new ServerSocket()) {
            taken.bind(new InetSocketAddress("127.0.0.1", 0));
            int port = taken.getLocalPort();
            WebSocketProxy proxy = builder().listen("127.0.0.1", port).build();
            started.add(proxy);
            // What the JVM opens once for good, the first time a server fails to bind, goes into the baseline.
            assertThatThrownBy(builder().listen("127.0.0.1", port).build()::start).isInstanceOf(IOException.class);

            Set<Thread> baseline = liveThreads();
            Map<String, Long> descriptors = openDescriptors();
            assertThatThrownBy(proxy::start).as("a start on a port in use").isInstanceOf(IOException.class);
            assertThatThrownBy(proxy::uri).isInstanceOf(IllegalStateException.class);
            assertBackToBaseline(baseline, descriptors);

            taken.close();
            // The handler kept the failed server, and start() said "already started, stopped or mounted" for good.
            assertThat(proxy.start().getPort()).as("the same proxy, started again once the port is free")
                    .isEqualTo(port);
            runSessions(port, proxy);
            Clients.assertNoLeaks(proxy, null);
        }
    }

    @Test
    void aStartThatFailsOnceItsThreadsRunLeavesNoThreadAndTheProxyCanStartAgain() throws Exception {
        // The backend TLS factory is made when the handler starts, after the server's thread pool did.
        AtomicBoolean trustStoreReady = new AtomicBoolean();
        ProxyBuilder failing = builder().listen("127.0.0.1", 0).backendTls(BackendTls.custom(
                () -> trustStoreReady.get() ? new SslContextFactory.Client() : null));
        assertThatThrownBy(failing.build()::start).as("a first cycle, for the baseline")
                .isInstanceOf(IOException.class);
        WebSocketProxy proxy = failing.build();
        started.add(proxy);

        Set<Thread> baseline = liveThreads();
        Map<String, Long> descriptors = openDescriptors();
        assertThatThrownBy(proxy::start).isInstanceOf(IOException.class)
                .hasMessageContaining("supplied no SslContextFactory.Client");
        assertBackToBaseline(baseline, descriptors);

        trustStoreReady.set(true);
        int port = proxy.start().getPort();
        runSessions(port, proxy);
        Clients.assertNoLeaks(proxy, null);
    }

    @Test
    void aNextHandlerServesOneRunningProxyAtATime() throws Exception {
        // Proxies built from one builder, or with toBuilder(), share their next handler, and a Jetty handler belongs
        // to one server: the second start failed with Jetty's bare IllegalStateException("STARTED").
        NextHandler next = new NextHandler();
        WebSocketProxy first = standalone(builder().listen("127.0.0.1", 0).nextHandler(next));
        WebSocketProxy second = first.toBuilder().listen("127.0.0.1", 0).build();
        started.add(second);
        assertThatThrownBy(second::start).isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("nextHandler " + next + " runs in another server")
                .hasMessageContaining("one running proxy at a time");

        first.stop(Duration.ofSeconds(5));
        int port = second.start().getPort();
        assertThat(next.isStarted()).as("the next handler, started with the proxy that has it now").isTrue();
        try (RawHttpExchange page = RawHttpExchange.send(port, "GET /page HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) {
            assertThat(page.statusLine()).isEqualTo("HTTP/1.1 200 OK");
        }
        assertThat(next.requests).containsExactly("/page");
        cleanSession(port, "/ws/second");
        Clients.assertNoLeaks(second, null);
    }

    @Test
    void stoppingAMountedProxyLeavesTheServerServingAndStoppingTheServerLeavesNothing() throws Exception {
        Function<WebSocketProxy, Server> mount = proxy -> {
            Server server = new Server(WebSocketProxy.threadPool());
            started.add(server::stop);
            ServerConnector connector = WebSocketProxy.serverConnector(server);
            connector.setHost("127.0.0.1");
            server.addConnector(connector);
            Handler.Wrapper handler = proxy.handler();
            handler.setHandler(new Handler.Abstract() {
                @Override
                public boolean handle(Request request, Response response, Callback callback) {
                    response.getHeaders().put("X-App", "served");
                    response.write(true, null, callback);
                    return true;
                }
            });
            server.setHandler(handler);
            return server;
        };
        WebSocketProxy warmUp = builder().build();
        Server warmUpServer = mount.apply(warmUp);
        warmUpServer.start();
        runSessions(port(warmUpServer), warmUp);
        stopWithASessionOpen(port(warmUpServer), warmUp);
        warmUpServer.stop();

        Set<Thread> baseline = liveThreads();
        Map<String, Long> descriptors = openDescriptors();
        WebSocketProxy proxy = builder().build();
        Server server = mount.apply(proxy);
        server.start();
        int port = port(server);
        runSessions(port, proxy);
        assertThat(threadsSince(baseline)).as("threads started with the server").isNotEmpty();
        stopWithASessionOpen(port, proxy);

        assertThat(proxy.sessions()).isEmpty();
        assertThat(((WebSocketProxyHandler) proxy.handler()).held())
                .isEqualTo(new WebSocketProxyHandler.Held(0, 0, 0, 0));
        assertThat(server.isRunning()).as("the application's server after the proxy stopped").isTrue();
        try (RawHttpExchange page = RawHttpExchange.send(port, "GET /page HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) {
            assertThat(page.statusLine()).isEqualTo("HTTP/1.1 200 OK");
            assertThat(page.head()).contains("X-App: served");
        }
        try (RawHttpExchange upgrade = RawHttpExchange.upgrade(port, "/ws/late")) {
            assertThat(upgrade.statusLine()).as("an upgrade to the stopped proxy").startsWith("HTTP/1.1 503");
        }
        server.stop();
        try (ServerSocket again = new ServerSocket()) {
            again.bind(new InetSocketAddress("127.0.0.1", port));
        }
        assertBackToBaseline(baseline, descriptors);
    }

    /**
     * A clean session, one whose client resets its connection, a handshake the backend refuses and one the proxy
     * refuses; returns when the proxy holds no session.
     */
    private void runSessions(int port, WebSocketProxy proxy) throws Exception {
        cleanSession(port, "/ws/clean");
        try (RawWebSocket dropped = RawWebSocket.connect(uri(port, "/ws/dropped"))) {
            dropped.send(true, RawWebSocket.TEXT, "x".getBytes(StandardCharsets.UTF_8));
            assertThat(dropped.read().text()).isEqualTo("x");
            dropped.abort();
        }
        try (RawHttpExchange refused = RawHttpExchange.upgrade(port, "/refused/x")) {
            assertThat(refused.statusLine()).isEqualTo("HTTP/1.1 403 Forbidden");
        }
        try (RawHttpExchange refused = RawHttpExchange.send(port, "GET /ws/v8 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")) {
            assertThat(refused.statusLine()).startsWith("HTTP/1.1 426");
        }
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(proxy.sessions()).isEmpty());
    }

    /** Stops the proxy while a session is open: its client gets {@code 1001} and then the end of the stream. */
    private void stopWithASessionOpen(int port, WebSocketProxy proxy) throws Exception {
        try (RawWebSocket open = RawWebSocket.connect(uri(port, "/ws/open"))) {
            open.send(true, RawWebSocket.TEXT, "y".getBytes(StandardCharsets.UTF_8));
            assertThat(open.read().text()).isEqualTo("y");
            proxy.stop(Duration.ofSeconds(5));
            RawWebSocket.Frame close = open.read();
            assertThat(close.opcode()).isEqualTo(RawWebSocket.CLOSE);
            assertThat(close.closeCode()).isEqualTo(1001);
            assertEndOfStream(open);
        }
    }

    private static void cleanSession(int port, String path) throws Exception {
        try (RawWebSocket clean = RawWebSocket.connect(uri(port, path))) {
            clean.send(true, RawWebSocket.TEXT, "hello".getBytes(StandardCharsets.UTF_8));
            assertThat(clean.read().text()).isEqualTo("hello");
            clean.sendClose(1000, "done");
            assertThat(clean.read().closeCode()).isEqualTo(1000);
            assertEndOfStream(clean);
        }
    }

    private static void assertEndOfStream(RawWebSocket raw) {
        assertThatThrownBy(raw::read).isInstanceOf(EOFException.class);
    }

    /**
     * Every thread started since {@code baseline} has ended, and there are no more sockets, pipes and event
     * descriptors open than {@code descriptors}.
     */
    private static void assertBackToBaseline(Set<Thread> baseline, @Nullable Map<String, Long> descriptors) {
        // Polled on this thread: Awaitility's own polling thread would be a thread started since the baseline.
        await().atMost(Duration.ofSeconds(10)).pollInSameThread().untilAsserted(() -> assertSoftly(soft -> {
            soft.assertThat(threadsSince(baseline)).as("threads started since the baseline").isEmpty();
            Map<String, Long> now = openDescriptors();
            if (descriptors != null && now != null) {
                soft.assertThat(total(now)).as("sockets, pipes and event descriptors open: %s (baseline %s)", now,
                        descriptors).isLessThanOrEqualTo(total(descriptors));
            }
        }));
    }

    private static Set<Thread> liveThreads() {
        return new HashSet<>(Thread.getAllStackTraces().keySet());
    }

    private static List<String> threadsSince(Set<Thread> baseline) {
        return Thread.getAllStackTraces().keySet().stream().filter(thread -> !baseline.contains(thread))
                .filter(Thread::isAlive).map(Thread::getName).sorted().toList();
    }

    /**
     * The JVM's open descriptors that are not files, by kind ({@code socket}, {@code pipe},
     * {@code anon_inode:[eventpoll]}, ...), or {@code null} without {@code /proc/self/fd} (Linux only). Files are left
     * out: the class loader opens a jar of the class path the first time a class in it (or after it in the path) is
     * looked up and keeps it open, so a class first needed after the baseline (by the assertions themselves, or by a
     * path of the cycle that depends on timing) adds one, and the proxy opens no file. What it could leak, a socket, a
     * selector (an epoll instance and its wake-up) or a pipe, is counted without tolerance.
     */
    private static @Nullable Map<String, Long> openDescriptors() {
        Path fds = Path.of("/proc/self/fd");
        if (!Files.isDirectory(fds)) {
            return null;
        }
        Map<String, Long> kinds = new TreeMap<>();
        try (Stream<Path> list = Files.list(fds)) {
            for (Path fd : list.toList()) {
                String target;
                try {
                    target = Files.readSymbolicLink(fd).toString();
                } catch (IOException e) {
                    continue; // closed meanwhile
                }
                if (!target.startsWith("/")) {
                    kinds.merge(target.replaceAll(":\\[\\d+]$", ""), 1L, Long::sum);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return kinds;
    }

    private static long total(Map<String, Long> descriptors) {
        return descriptors.values().stream().mapToLong(Long::longValue).sum();
    }

    private static int port(Server server) {
        return ((ServerConnector) server.getConnectors()[0]).getLocalPort();
    }

    private static URI uri(int port, String path) {
        return URI.create("ws://127.0.0.1:" + port + path);
    }
}
