package dev.wsproxy.benchmark;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.time.Duration;
import java.util.List;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import dev.wsproxy.WebSocketProxy;

/**
 * The harness end to end on a few messages, not a load: the echo backend, wsproxy in front of it, and every kind of
 * run, each bounded by a small count. Proves that what run.sh measures is a correct echo through the proxy.
 */
class HarnessTest {

    private static EchoBackend backend;
    private static WebSocketProxy proxy;
    private static LoadClient client;
    private static Target direct;
    private static Target proxied;

    @BeforeAll
    static void start() throws Exception {
        backend = EchoBackend.start(0);
        proxy = ProxyMain.proxy(0, backend.port());
        URI uri = proxy.start();
        int admin = AdminPort.start(0);
        long pid = ProcessHandle.current().pid();
        direct = new Target("direct", URI.create("ws://127.0.0.1:" + backend.port() + "/"), -1, -1, false, false);
        proxied = new Target("wsproxy", URI.create("ws://127.0.0.1:" + uri.getPort() + "/"), pid, admin, false, false);
        client = new LoadClient(List.of());
    }

    @AfterAll
    static void stop() throws Exception {
        client.close();
        proxy.close();
        backend.close();
    }

    @Test
    void echoesTextAndBinaryThroughTheProxyAndMeasuresItsCpu() throws Exception {
        Runs runs = new Runs(client, 8, 200);

        RunResult text = runs.echo(proxied, Workload.parse("text64x4"), 1, Duration.ZERO, Duration.ofSeconds(30));
        RunResult large = runs.echo(proxied, Workload.parse("bin1mx2"), 1, Duration.ZERO, Duration.ofSeconds(30));

        assertThat(text.errors()).as(String.valueOf(text.firstError())).isZero();
        assertThat(text.metrics()).containsKeys(RunResult.MSG_PER_S, RunResult.P99_US, RunResult.CPU_US_PER_MSG,
                RunResult.JIT_MS);
        // The first windows in this JVM compile the relay's code: the column sees the compilers at work.
        assertThat(text.metrics().get(RunResult.JIT_MS) + large.metrics().get(RunResult.JIT_MS)).isPositive();
        assertThat(text.metrics().get(RunResult.CPU_US_PER_MSG)).isGreaterThanOrEqualTo(0);
        // A 1 MiB message arrives in 64 KiB fragments; the generator counts it only when all its bytes are back.
        assertThat(large.errors()).as(String.valueOf(large.firstError())).isZero();
        assertThat(large.metrics().get(RunResult.MB_PER_S)).isPositive();
    }

    @Test
    void pacesAnOpenLoopEchoThroughTheProxy() throws Exception {
        Runs runs = new Runs(client, 8, 1_500);

        RunResult paced = runs.paced(proxied, Workload.parse("text64x4@5000"), 1, Duration.ZERO,
                Duration.ofSeconds(30));

        // The run ends after 1,500 echoes: about 0.3 s at the rate, which the pacer kept (or this is an error).
        assertThat(paced.errors()).as(String.valueOf(paced.firstError())).isZero();
        assertThat(paced.metrics().get(RunResult.SENT_PER_S)).isBetween(0.5 * 5000, 1.5 * 5000);
        assertThat(paced.metrics().get(RunResult.MSG_PER_S)).isBetween(0.5 * 5000, 1.5 * 5000);
        assertThat(paced.metrics().get(RunResult.P50_US)).isPositive();
        assertThat(paced.metrics()).containsKeys(RunResult.CPU_US_PER_MSG, RunResult.PACER_LAG_P99_MS);
    }

    @Test
    void stormsHandshakesDirectAndThroughTheProxy() throws Exception {
        Runs runs = new Runs(client, 8, 40);

        RunResult viaBackend = runs.storm(direct, Workload.parse("storm4"), 1, Duration.ZERO, Duration.ofSeconds(30));
        RunResult viaProxy = runs.storm(proxied, Workload.parse("storm4"), 1, Duration.ZERO, Duration.ofSeconds(30));

        assertThat(viaBackend.errors()).as(String.valueOf(viaBackend.firstError())).isZero();
        assertThat(viaProxy.errors()).as(String.valueOf(viaProxy.firstError())).isZero();
        assertThat(viaProxy.metrics().get(RunResult.MSG_PER_S)).isPositive();
    }

    @Test
    void holdsIdleConnectionsAndReadsTheProxysHeap() throws Exception {
        Runs runs = new Runs(client, 8, Long.MAX_VALUE);

        RunResult idle = runs.idle(proxied, Workload.parse("idle50"), 50, 1, Duration.ZERO, null);

        assertThat(idle.errors()).as(String.valueOf(idle.firstError())).isZero();
        assertThat(idle.metrics().get(RunResult.CONNECTIONS)).isEqualTo(50.0);
        assertThat(idle.metrics()).containsKeys(RunResult.HEAP_KIB_PER_CONN, RunResult.THREADS,
                RunResult.HOLD_CORE_PERCENT);
    }
}
