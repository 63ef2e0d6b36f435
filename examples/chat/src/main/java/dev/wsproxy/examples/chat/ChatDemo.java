package dev.wsproxy.examples.chat;

import java.net.URI;
import java.time.Duration;

import org.eclipse.jetty.server.handler.ResourceHandler;
import org.eclipse.jetty.util.resource.Resource;
import org.eclipse.jetty.util.resource.ResourceFactory;
import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.OriginValidator;
import dev.wsproxy.ProxyBuilder;
import dev.wsproxy.TimeoutPolicy;
import dev.wsproxy.WebSocketProxy;

/**
 * The chat demo: a {@link ChatBackend} on a port of its own, and wsproxy in front of it serving the chat page at
 * {@code /} and proxying {@code /ws/} to the backend, as in the nginx WebSocket guide.
 *
 * <pre>{@code
 * try (ChatDemo demo = new ChatDemo()) {
 *     URI uri = demo.start(8080);   // http://127.0.0.1:8080/
 *     ...
 * }
 * }</pre>
 *
 * <p>Not thread-safe: start and close it from one thread.
 */
public final class ChatDemo implements AutoCloseable {

    /** The port {@link Main} uses unless told otherwise: {@value}. */
    public static final int DEFAULT_PORT = 8080;

    private final ChatBackend backend = new ChatBackend();
    private @Nullable WebSocketProxy proxy;

    /**
     * Starts the backend and the proxy in front of it, both on {@code 127.0.0.1}.
     *
     * @param port the proxy's port; 0 picks a free one
     * @return the URI to open in a browser, like {@code http://127.0.0.1:8080/}
     * @throws Exception if a server does not start, for instance because the port is taken; nothing is left running
     */
    public URI start(int port) throws Exception {
        if (proxy != null) {
            throw new IllegalStateException("start(): the demo was already started");
        }
        try {
            URI backendUri = backend.start();
            WebSocketProxy built = ProxyBuilder.create()
                    .listen("127.0.0.1", port)
                    // The backend URI has no path: /ws/chat reaches the backend as /ws/chat (nginx proxy_pass rules).
                    .route("/ws/", Backend.of(backendUri))
                    // The page and the socket share one origin: refuse pages of other sites (403).
                    .originValidator(OriginValidator.sameOrigin())
                    // Close chats idle for ten minutes; ping a quiet browser or backend every 30 s, which finds a
                    // vanished one within a minute and keeps the socket alive through load balancers and NAT.
                    .timeoutPolicy(TimeoutPolicy.custom().idle(Duration.ofMinutes(10)).ping(Duration.ofSeconds(30))
                            .build())
                    // The limit holds both ways, so it must fit the backend's largest broadcast, which wraps and
                    // escapes a client's text; the backend itself refuses texts over 16 KiB with 1009.
                    .maxMessageSize(ChatBackend.MAX_EVENT_SIZE)
                    // One client may not flood the room: over 20 messages a second (bursts of 20) closes it, 1008.
                    .messageRateLimit(20)
                    // Everything outside /ws/ is the chat page.
                    .nextHandler(staticFiles())
                    .drainTimeout(Duration.ofSeconds(5))
                    .build();
            proxy = built;
            return built.start();
        } catch (Exception e) {
            close();
            throw e;
        }
    }

    /**
     * Returns the proxy, to look at its sessions.
     *
     * @return the started proxy
     * @throws IllegalStateException if {@link #start(int)} has not been called
     */
    public WebSocketProxy proxy() {
        WebSocketProxy started = proxy;
        if (started == null) {
            throw new IllegalStateException("proxy(): the demo is not started");
        }
        return started;
    }

    /**
     * Returns the chat server behind the proxy.
     *
     * @return the backend
     */
    public ChatBackend backend() {
        return backend;
    }

    /** Stops the proxy, which closes the chat sessions with {@code 1001 Going Away}, then the backend. */
    @Override
    public void close() {
        WebSocketProxy started = proxy;
        if (started != null) {
            started.close();
        }
        backend.close();
    }

    /** Serves {@code src/main/resources/static/} (from the class path, so also from inside the runnable jar). */
    private static ResourceHandler staticFiles() {
        ResourceHandler files = new ResourceHandler();
        Resource base = ResourceFactory.of(files).newClassLoaderResource("static/", false);
        if (base == null) {
            throw new IllegalStateException("static/ is not on the class path");
        }
        files.setBaseResource(base);
        files.setDirAllowed(false);
        files.setWelcomeFiles("index.html");
        return files;
    }
}
