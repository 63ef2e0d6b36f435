package dev.wsproxy;

import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.eclipse.jetty.http.HttpField;
import org.eclipse.jetty.server.Handler;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.Response;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.util.ssl.SslContextFactory;
import org.eclipse.jetty.websocket.api.Callback;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.server.ServerWebSocketContainer;
import org.eclipse.jetty.websocket.server.WebSocketUpgradeHandler;

/**
 * A real Jetty WebSocket backend on 127.0.0.1:0, tagged with an id, that echoes what it gets and records what it saw.
 *
 * <p>Text commands: {@code close:CODE:REASON} closes with that code, {@code drop} drops the TCP connection without a
 * close frame, {@code ping:DATA} sends a ping, {@code whoami} answers the backend id, {@code push:N:SIZE} sends N
 * binary messages of SIZE bytes. Everything else is echoed. Paths: {@code /reject401} and {@code /reject403} refuse
 * the upgrade with that status, a header and a body; {@code /plain} answers plain HTTP with the path and query.
 */
public final class TestBackend implements AutoCloseable {

    /** What the backend saw of one upgrade request, and when ({@link System#nanoTime()}). */
    record Upgrade(String pathQuery, Map<String, List<String>> headers, List<String> subprotocols, long arrivedNanos) {
        String header(String name) {
            List<String> values = headers.get(name.toLowerCase());
            return values == null ? null : String.join(", ", values);
        }
    }

    /** A close frame the backend received. */
    record Closed(int code, String reason) {
    }

    final String id;
    final BlockingQueue<Upgrade> upgrades = new LinkedBlockingQueue<>();
    final BlockingQueue<Closed> closes = new LinkedBlockingQueue<>();
    final BlockingQueue<String> pongs = new LinkedBlockingQueue<>();
    final BlockingQueue<String> texts = new LinkedBlockingQueue<>();
    final AtomicInteger httpConnections = new AtomicInteger();
    final java.util.concurrent.atomic.AtomicLong pushedBytes = new java.util.concurrent.atomic.AtomicLong();
    private final Server server;
    private final ServerConnector connector;
    private final ServerWebSocketContainer container;

    private final boolean tls;

    public TestBackend(String id) throws Exception {
        this(id, null);
    }

    /** A backend serving {@code wss://} with {@code tls}, or plain {@code ws://} when it is {@code null}. */
    TestBackend(String id, SslContextFactory.Server tls) throws Exception {
        this.id = id;
        this.tls = tls != null;
        server = new Server();
        if (tls == null) {
            connector = new ServerConnector(server);
        } else {
            // No SNI host check: the proxy sends the client's Host, and the tests are about certificates.
            org.eclipse.jetty.server.HttpConfiguration http = new org.eclipse.jetty.server.HttpConfiguration();
            http.addCustomizer(new org.eclipse.jetty.server.SecureRequestCustomizer(false));
            connector = new ServerConnector(server, tls, new org.eclipse.jetty.server.HttpConnectionFactory(http));
        }
        connector.setHost("127.0.0.1");
        connector.setPort(0);
        connector.addEventListener(new org.eclipse.jetty.io.SelectorManager.AcceptListener() {
            @Override
            public void onAccepted(java.nio.channels.SelectableChannel channel) {
                httpConnections.incrementAndGet();
            }
        });
        server.addConnector(connector);
        WebSocketUpgradeHandler upgradeHandler = WebSocketUpgradeHandler.from(server, c -> {
            c.setMaxTextMessageSize(64 * 1024 * 1024);
            c.setMaxBinaryMessageSize(64 * 1024 * 1024);
            c.setIdleTimeout(Duration.ofMinutes(1));
            c.addMapping("/*", (rq, rs, cb) -> {
                Map<String, List<String>> headers = new LinkedHashMap<>();
                for (HttpField field : rq.getHeaders()) {
                    headers.computeIfAbsent(field.getLowerCaseName(), k -> new java.util.ArrayList<>())
                            .add(field.getValue());
                }
                String pathQuery = rq.getHttpURI().getPathQuery();
                List<String> offered = rq.getSubProtocols();
                upgrades.add(new Upgrade(pathQuery, headers, offered, System.nanoTime()));
                if (pathQuery.startsWith("/reject401")) {
                    rs.setStatus(401);
                    rs.getHeaders().put("WWW-Authenticate", "Bearer realm=\"test\"");
                    rs.getHeaders().put("Content-Type", "text/plain");
                    rs.write(true, ByteBuffer.wrap("token required".getBytes(StandardCharsets.UTF_8)), cb);
                    return null;
                }
                if (pathQuery.startsWith("/reject403")) {
                    rs.setStatus(403);
                    rs.getHeaders().put("X-Backend-Reason", "forbidden tenant");
                    rs.write(true, ByteBuffer.wrap("forbidden by backend".getBytes(StandardCharsets.UTF_8)), cb);
                    return null;
                }
                for (String protocol : offered) {
                    if (protocol.startsWith("chat")) {
                        rs.setAcceptedSubProtocol(protocol);
                        break;
                    }
                }
                return new Endpoint();
            });
        });
        upgradeHandler.setHandler(new Handler.Abstract() {
            @Override
            public boolean handle(Request request, Response response, org.eclipse.jetty.util.Callback callback) {
                String body = "plain:" + request.getHttpURI().getPathQuery() + " host:"
                        + request.getHeaders().get("Host") + " xff:" + request.getHeaders().get("X-Forwarded-For")
                        + " uid:" + request.getHeaders().get("X-User-Id") + " uid_:" + request.getHeaders().get("X_User_Id");
                response.getHeaders().put("Content-Type", "text/plain");
                response.write(true, ByteBuffer.wrap(body.getBytes(StandardCharsets.UTF_8)), callback);
                return true;
            }
        });
        server.setHandler(upgradeHandler);
        container = upgradeHandler.getServerWebSocketContainer();
        server.start();
    }

    URI uri() {
        return URI.create((tls ? "wss" : "ws") + "://127.0.0.1:" + connector.getLocalPort());
    }

    int port() {
        return connector.getLocalPort();
    }

    public Backend backend() {
        return Backend.of(uri());
    }

    int openSessions() {
        return container.getOpenSessions().size();
    }

    Upgrade nextUpgrade() throws InterruptedException {
        Upgrade upgrade = upgrades.poll(10, TimeUnit.SECONDS);
        if (upgrade == null) {
            throw new AssertionError("backend " + id + " saw no upgrade request");
        }
        return upgrade;
    }

    Closed nextClose() throws InterruptedException {
        Closed closed = closes.poll(10, TimeUnit.SECONDS);
        if (closed == null) {
            throw new AssertionError("backend " + id + " saw no close");
        }
        return closed;
    }

    /** Waits until the backend's pushes stop progressing: every buffer between it and a reader is full. */
    long awaitPushStalled() {
        long[] last = {-1};
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(60)).pollInterval(Duration.ofMillis(500))
                .until(() -> {
                    long now = pushedBytes.get();
                    boolean stalled = now > 0 && now == last[0];
                    last[0] = now;
                    return stalled;
                });
        return pushedBytes.get();
    }

    void stopServer() throws Exception {
        server.stop();
    }

    /**
     * Stops taking new connections while those open go on being served, as a backend whose accept loop has stalled:
     * the kernel still completes new TCP handshakes, but nothing reads them. The acceptor blocked in its accept may
     * take one more.
     */
    void stopAccepting() {
        connector.setAccepting(false);
    }

    /** Starts the server again on the port it had. */
    void restartServer(int port) throws Exception {
        connector.setPort(port);
        server.start();
    }

    @Override
    public void close() throws Exception {
        server.stop();
    }

    /** Public: Jetty binds endpoint methods with method handles. */
    public final class Endpoint implements Session.Listener.AutoDemanding {
        private volatile Session session;

        @Override
        public void onWebSocketOpen(Session session) {
            this.session = session;
        }

        @Override
        public void onWebSocketText(String message) {
            texts.add(message);
            if (message.startsWith("close:")) {
                String[] parts = message.split(":", 3);
                session.close(Integer.parseInt(parts[1]), parts.length > 2 ? parts[2] : null, Callback.NOOP);
            } else if (message.equals("drop")) {
                session.disconnect();
            } else if (message.startsWith("ping:")) {
                session.sendPing(ByteBuffer.wrap(message.substring(5).getBytes(StandardCharsets.UTF_8)),
                        Callback.NOOP);
            } else if (message.equals("whoami")) {
                session.sendText(id, Callback.NOOP);
            } else if (message.startsWith("push:")) {
                String[] parts = message.split(":");
                push(Integer.parseInt(parts[1]), Integer.parseInt(parts[2]));
            } else {
                session.sendText(message, Callback.NOOP);
            }
        }

        private void push(int count, int size) {
            if (count == 0) {
                return;
            }
            session.sendBinary(ByteBuffer.allocate(size), Callback.from(() -> {
                pushedBytes.addAndGet(size);
                push(count - 1, size);
            }, x -> { }));
        }

        @Override
        public void onWebSocketBinary(ByteBuffer payload, Callback callback) {
            ByteBuffer copy = ByteBuffer.allocate(payload.remaining());
            copy.put(payload).flip();
            callback.succeed();
            session.sendBinary(copy, Callback.NOOP);
        }

        @Override
        public void onWebSocketPong(ByteBuffer payload) {
            pongs.add(StandardCharsets.UTF_8.decode(payload).toString());
        }

        @Override
        public void onWebSocketClose(int statusCode, String reason, Callback callback) {
            closes.add(new Closed(statusCode, reason == null ? "" : reason));
            if (statusCode == 4000) {
                // Answer with a code of our own, to show that the answer travels back to the client.
                session.close(4100, "backend-reply", callback);
            } else {
                callback.succeed();
            }
        }
    }
}
