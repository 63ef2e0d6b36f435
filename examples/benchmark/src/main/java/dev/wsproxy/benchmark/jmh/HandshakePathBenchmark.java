package dev.wsproxy.benchmark.jmh;

import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.OriginValidator;

/**
 * What wsproxy's public API does on every handshake before any backend connection: the origin check and the backend
 * choice, plus {@link Backend#of(String)} (configuration time, and a selector may build backends per handshake).
 * The frame relay itself is internal and is measured end to end by {@code run.sh} instead.
 *
 * <pre>java -jar examples/benchmark/target/wsproxy-benchmark.jar jmh HandshakePath</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class HandshakePathBenchmark {

    private BackendSelector roundRobin;
    private OriginValidator allowList;
    private OriginValidator sameOrigin;
    private StubRequest request;

    @Setup
    public void setUp() {
        List<Backend> backends = List.of(Backend.of("ws://10.0.0.1:8080"), Backend.of("ws://10.0.0.2:8080"),
                Backend.of("ws://10.0.0.3:8080"));
        roundRobin = BackendSelector.roundRobin().forRoute("/ws/");
        allowList = OriginValidator.allowList("https://app.example.com", "http://app.example.com",
                "https://admin.example.com");
        sameOrigin = OriginValidator.sameOrigin();
        request = new StubRequest(backends, Map.of("origin", "http://app.example.com", "host", "app.example.com"));
    }

    @Benchmark
    public Backend roundRobinSelect() {
        return roundRobin.select(request);
    }

    @Benchmark
    public boolean allowListAllowed() {
        return allowList.isAllowed("http://app.example.com", request);
    }

    @Benchmark
    public boolean allowListRefused() {
        return allowList.isAllowed("https://evil.example.net", request);
    }

    @Benchmark
    public boolean sameOriginAllowed() {
        return sameOrigin.isAllowed("http://app.example.com", request);
    }

    @Benchmark
    public Backend backendOf() {
        return Backend.of("ws://10.0.0.1:8080/chat");
    }
}
