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
 *     [--connect-timeout SECONDS] [--ping-interval SECONDS]</pre>
 *
 * <p>{@code --connect-timeout} shows which timers hold closed sessions; {@code --ping-interval} turns the keep-alive
 * pings on, to measure what they cost ({@code run.sh --variant NAME="JVM flags -- --ping-interval 30"}).
 */
public final class ProxyMain {

    private static final Duration IDLE_TIMEOUT = Duration.ofHours(1);

    private ProxyMain() {
    }

    /** The proxy under test; {@code main} starts it, the test starts it on port 0. */
    static WebSocketProxy proxy(int port, int backendPort) {
        return proxy(port, backendPort, TimeoutPolicy.idle(IDLE_TIMEOUT));
    }

    private static WebSocketProxy proxy(int port, int backendPort, TimeoutPolicy timeouts) {
        return ProxyBuilder.create()
                .listen("127.0.0.1", port)
                .route("/", Backend.of("ws://127.0.0.1:" + backendPort))
                .timeoutPolicy(timeouts)
                .build();
    }

    public static void main(String[] args) throws Exception {
        Args options = new Args(args);
        int port = options.intValue("--port", 19002);
        int backendPort = options.intValue("--backend-port", 19001);
        int adminPort = options.intValue("--admin-port", -1);
        Duration connectTimeout = options.seconds("--connect-timeout", null);
        Duration pingInterval = options.seconds("--ping-interval", null);
        options.requireAllUsed();
        TimeoutPolicy.Builder timeouts = TimeoutPolicy.custom().idle(IDLE_TIMEOUT);
        if (connectTimeout != null) {
            timeouts.connect(connectTimeout);
        }
        if (pingInterval != null) {
            timeouts.ping(pingInterval);
        }
        WebSocketProxy proxy = proxy(port, backendPort, timeouts.build());
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
