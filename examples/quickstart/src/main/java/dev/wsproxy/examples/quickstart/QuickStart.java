package dev.wsproxy.examples.quickstart;

import java.net.URI;
import java.time.Duration;

import dev.wsproxy.Backend;
import dev.wsproxy.OriginValidator;
import dev.wsproxy.ProxyBuilder;
import dev.wsproxy.TimeoutPolicy;
import dev.wsproxy.WebSocketProxy;

/** The README's quick start: a WebSocket proxy in front of a backend on port 3000. */
public final class QuickStart {

    private QuickStart() {
    }

    /** Builds the proxy of the quick start; {@code main} starts it, the test starts it on port 0. */
    static WebSocketProxy proxy(int port, URI backend) {
        // quick start begins
        WebSocketProxy proxy = ProxyBuilder.create()
                .listen("127.0.0.1", port)
                .route("/ws/", Backend.of(backend))
                .timeoutPolicy(TimeoutPolicy.idle(Duration.ofMinutes(30)))
                // The pages that may open sessions: your site's origin; here, pages on the proxy's own address.
                .originValidator(OriginValidator.allowList("http://127.0.0.1:" + port, "http://localhost:" + port))
                .build();
        // quick start ends
        return proxy;
    }

    public static void main(String[] args) throws Exception {
        WebSocketProxy proxy = proxy(8080, URI.create(args.length > 0 ? args[0] : "ws://127.0.0.1:3000"));
        Runtime.getRuntime().addShutdownHook(new Thread(proxy::close));
        System.out.println("proxying ws://127.0.0.1:8080/ws/ on " + proxy.start());
        Thread.currentThread().join();
    }
}
