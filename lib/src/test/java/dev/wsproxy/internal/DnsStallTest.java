package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.InetAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.HttpConnectionFactory;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.util.thread.QueuedThreadPool;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.server.WebSocketUpgradeHandler;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import dev.wsproxy.Backend;
import dev.wsproxy.TimeoutPolicy;

/**
 * A backend named by a host name whose DNS server stops answering, behind a proxy with a small thread pool: the
 * reconnect storm to it, plain HTTP to it and a route that follows the name wait for one look-up, and the proxy's
 * other route keeps proxying WebSocket and plain HTTP.
 * The look-up of that name is the test's (the handler's package-private constructor); the servers and clients are
 * real.
 */
class DnsStallTest {

    private static final String NAME = "chat.stalled.test";
    /** The proxy's pool: fewer threads than handshakes waiting for the name. */
    private static final int THREADS = 24;
    private static final int HANDSHAKES = 64;
    private static final Duration WAIT = Duration.ofSeconds(20);

    private final CountDownLatch release = new CountDownLatch(1);
    private final AtomicInteger lookUps = new AtomicInteger();
    private Server backend;
    private ServerConnector backendConnector;
    private Server proxyServer;
    private ServerConnector proxyConnector;
    private WebSocketProxyHandler proxy;
    private final ExecutorService clientThreads = Executors.newCachedThreadPool();
    /** The JDK's client, independent of Jetty's. */
    private final HttpClient client = HttpClient.newBuilder().executor(clientThreads).build();
    private final List<WebSocket> sockets = new ArrayList<>();

    /** Blocks for {@link #NAME} until released, as {@code getAllByName} does while the DNS server is silent. */
    private InetAddress[] lookUp(String host) throws UnknownHostException {
        if (!host.equals(NAME)) {
            return InetAddress.getAllByName(host);
        }
        lookUps.incrementAndGet();
        try {
            if (!release.await(WAIT.toSeconds() * 3, TimeUnit.SECONDS)) {
                throw new UnknownHostException(host + ": never released");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new UnknownHostException(host + ": interrupted");
        }
        return new InetAddress[] {InetAddress.getByAddress(host, new byte[] {127, 0, 0, 1})};
    }

    @BeforeEach
    void start() throws Exception {
        backend = new Server();
        backendConnector = new ServerConnector(backend);
        backendConnector.setHost("127.0.0.1");
        backend.addConnector(backendConnector);
        WebSocketUpgradeHandler upgrades = WebSocketUpgradeHandler.from(backend,
                container -> container.addMapping("/*", (request, response, callback) -> new Echo()));
        upgrades.setHandler(new Handler.Abstract() {
            @Override
            public boolean handle(Request request, Response response, Callback callback) {
                response.write(true, ByteBuffer.wrap(("plain:" + Request.getPathInContext(request))
                        .getBytes(StandardCharsets.UTF_8)), callback);
                return true;
            }
        });
        backend.setHandler(upgrades);
        backend.start();
        int port = backendConnector.getLocalPort();

        RouteSettings named = new RouteSettings("/named/");
        named.backends(List.of(Backend.of("ws://" + NAME + ":" + port)));
        // Longer than the test takes: the handshakes wait for the name, not for their timer.
        named.timeouts(TimeoutPolicy.custom().connect(Duration.ofSeconds(60)).build());
        // A route that follows the name (backendsFromDns): its look-up is the one the storm waits for. Refreshed
        // after the test, so that the storm's look-up stays the only one.
        RouteSettings followed = new RouteSettings("/followed/");
        followed.dns(Backend.of("ws://" + NAME + ":" + port), Duration.ofHours(1));
        RouteSettings literal = new RouteSettings("/ip/");
        literal.backends(List.of(Backend.of("ws://127.0.0.1:" + port)));
        RouteSettings defaults = RouteSettings.proxyDefaults(65_536);
        ProxyConfig config = new ProxyConfig("127.0.0.1", 0, false, List.of(named.resolve(defaults),
                followed.resolve(defaults), literal.resolve(defaults)), null, Duration.ofSeconds(1),
                ProxyConfig.Limits.NONE, ProxyConfig.Tls.NONE);

        QueuedThreadPool threads = WebSocketEndPoints.threadPool();
        threads.setName("dns-stall-proxy");
        threads.setMaxThreads(THREADS);
        proxyServer = new Server(threads);
        proxyConnector = WebSocketEndPoints.serverConnector(proxyServer, new HttpConnectionFactory());
        proxyConnector.setHost("127.0.0.1");
        proxyServer.addConnector(proxyConnector);
        proxy = new WebSocketProxyHandler(config, this::lookUp);
        proxyServer.setHandler(proxy);
        proxyServer.start();
    }

    @AfterEach
    void stop() throws Exception {
        release.countDown();
        for (WebSocket socket : sockets) {
            socket.abort();
        }
        clientThreads.shutdownNow();
        proxyServer.stop();
        backend.stop();
    }

    private URI proxyUri(String scheme, String path) {
        return URI.create(scheme + "://127.0.0.1:" + proxyConnector.getLocalPort() + path);
    }

    private CompletableFuture<WebSocket> connect(String path, BlockingQueue<String> received) {
        return client.newWebSocketBuilder().buildAsync(proxyUri("ws", path), new WebSocket.Listener() {
            @Override
            public CompletionStage<?> onText(WebSocket socket, CharSequence data, boolean last) {
                received.add(data.toString());
                socket.request(1);
                return null;
            }
        }).whenComplete((socket, failure) -> {
            if (socket != null) {
                synchronized (sockets) {
                    sockets.add(socket);
                }
            }
        });
    }

    private static String echo(WebSocket socket, BlockingQueue<String> received, String text) throws Exception {
        socket.sendText(text, true).get(WAIT.toSeconds(), TimeUnit.SECONDS);
        String answer = received.poll(WAIT.toSeconds(), TimeUnit.SECONDS);
        assertThat(answer).as("echo of " + text).isNotNull();
        return answer;
    }

    @Test
    void aStormToAStalledNameWaitsForOneLookUpWhileTheOtherRouteIsProxied() throws Exception {
        // Jetty's resolver blocked one pool thread per handshake: the pool ran out, no other route was served (the
        // plain HTTP request and the handshake below waited for the DNS server), nor were the storm's handshakes.
        List<CompletableFuture<WebSocket>> storm = new ArrayList<>();
        List<BlockingQueue<String>> stormReceived = new ArrayList<>();
        for (int i = 0; i < HANDSHAKES; i++) {
            BlockingQueue<String> received = new LinkedBlockingQueue<>();
            stormReceived.add(received);
            storm.add(connect("/named/chat", received));
        }
        await().atMost(WAIT).untilAsserted(() -> assertThat(proxy.held().pendingBackendHandshakes())
                .as("handshakes waiting for " + NAME).isEqualTo(HANDSHAKES));
        // Plain HTTP to the name waits for the same look-up: the forwarder's client shares the resolver.
        CompletableFuture<HttpResponse<String>> plainToName = client.sendAsync(HttpRequest.newBuilder(
                proxyUri("http", "/named/hello")).timeout(WAIT).build(), HttpResponse.BodyHandlers.ofString());
        assertThat(lookUps.get()).as("look-ups of " + NAME).isOne();

        HttpResponse<String> plain = client.sendAsync(HttpRequest.newBuilder(proxyUri("http", "/ip/hello"))
                .timeout(WAIT).build(), HttpResponse.BodyHandlers.ofString()).get(WAIT.toSeconds(), TimeUnit.SECONDS);
        assertThat(plain.statusCode()).isEqualTo(200);
        assertThat(plain.body()).isEqualTo("plain:/ip/hello");
        BlockingQueue<String> received = new LinkedBlockingQueue<>();
        WebSocket other = connect("/ip/chat", received).get(WAIT.toSeconds(), TimeUnit.SECONDS);
        assertThat(echo(other, received, "while the name stalls")).isEqualTo("while the name stalls");
        assertThat(storm).noneMatch(CompletableFuture::isDone);
        assertThat(plainToName).isNotDone();

        release.countDown();
        for (int i = 0; i < HANDSHAKES; i++) {
            WebSocket socket = storm.get(i).get(WAIT.toSeconds(), TimeUnit.SECONDS);
            assertThat(echo(socket, stormReceived.get(i), "hello " + i)).isEqualTo("hello " + i);
        }
        HttpResponse<String> named = plainToName.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        assertThat(named.statusCode()).isEqualTo(200);
        assertThat(named.body()).isEqualTo("plain:/named/hello");
        // The route that follows the name got the same answer.
        BlockingQueue<String> followedReceived = new LinkedBlockingQueue<>();
        WebSocket followedSocket = connect("/followed/chat", followedReceived).get(WAIT.toSeconds(), TimeUnit.SECONDS);
        assertThat(echo(followedSocket, followedReceived, "followed")).isEqualTo("followed");
        assertThat(lookUps.get()).as("one look-up for the whole storm, plain HTTP and the route that follows the name")
                .isOne();
    }

    /** Echoes text; public: Jetty binds endpoint methods with method handles. */
    public static final class Echo implements Session.Listener.AutoDemanding {
        private Session session;

        @Override
        public void onWebSocketOpen(Session session) {
            this.session = session;
        }

        @Override
        public void onWebSocketText(String message) {
            session.sendText(message, org.eclipse.jetty.websocket.api.Callback.NOOP);
        }
    }
}
