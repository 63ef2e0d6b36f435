package dev.wsproxy.benchmark;

import java.net.URI;
import java.time.Duration;

import dev.wsproxy.Backend;
import dev.wsproxy.ProxyBuilder;
import dev.wsproxy.TimeoutPolicy;
import dev.wsproxy.WebSocketProxy;

/**
 * Starts wsproxy in front of the echo backend, configured as a user would: one route, defaults everywhere except an
 * idle timeout long enough for the idle-hold workloads.
 *
 * <pre>java -jar wsproxy-benchmark.jar proxy --port 19002 --backend-port 19001 [--admin-port 19101]
 *     [--connect-timeout SECONDS]</pre>
 */
public final class ProxyMain {

    private ProxyMain() {
    }

    /** The proxy under test; {@code main} starts it, the test starts it on port 0. */
    static WebSocketProxy proxy(int port, int backendPort) {
        return ProxyBuilder.create()
                .listen("127.0.0.1", port)
                .route("/", Backend.of("ws://127.0.0.1:" + backendPort))
                .timeoutPolicy(TimeoutPolicy.idle(Duration.ofHours(1)))
                .build();
    }

    /** The same proxy with another connect timeout (to see which timers hold closed sessions). */
    static WebSocketProxy proxy(int port, int backendPort, Duration connectTimeout) {
        return proxy(port, backendPort).toBuilder()
                .timeoutPolicy(TimeoutPolicy.custom().idle(Duration.ofHours(1)).connect(connectTimeout).build())
                .build();
    }

    public static void main(String[] args) throws Exception {
        Args options = new Args(args);
        int port = options.intValue("--port", 19002);
        int backendPort = options.intValue("--backend-port", 19001);
        int adminPort = options.intValue("--admin-port", -1);
        Duration connectTimeout = options.seconds("--connect-timeout", null);
        options.requireAllUsed();
        WebSocketProxy proxy = connectTimeout == null ? proxy(port, backendPort)
                : proxy(port, backendPort, connectTimeout);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> proxy.stop(Duration.ofSeconds(2))));
        URI uri = proxy.start();
        if (adminPort >= 0) {
            AdminPort.start(adminPort);
        }
        System.out.println("wsproxy listening on " + uri + " -> ws://127.0.0.1:" + backendPort
                + " (pid " + ProcessHandle.current().pid() + ")");
        Thread.currentThread().join();
    }
}
