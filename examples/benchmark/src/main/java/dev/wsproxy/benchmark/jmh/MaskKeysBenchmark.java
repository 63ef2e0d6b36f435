package dev.wsproxy.benchmark.jmh;

import java.security.SecureRandom;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import dev.wsproxy.internal.MaskKeys;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One masking key per frame sent to a backend, as Jetty's client-side connection draws it ({@code new byte[4]}, then
 * {@code nextBytes}): from a {@link SecureRandom} shared by the proxy's connections, as the proxy did before, and from
 * {@link MaskKeys}, which draws the same generator in blocks. With one thread, and with two drawing at once (the
 * proxy's selector threads on this 2-core machine share the generator).
 *
 * <pre>java -jar examples/benchmark/target/wsproxy-benchmark.jar jmh MaskKeys</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class MaskKeysBenchmark {

    /** The generator the keys come from. */
    @Param({"SecureRandom", "MaskKeys"})
    public String keys;

    private Random random;

    @Setup
    public void setUp() {
        random = "MaskKeys".equals(keys) ? new MaskKeys() : new SecureRandom();
    }

    private byte[] key() {
        byte[] key = new byte[4];
        random.nextBytes(key);
        return key;
    }

    @Benchmark
    @Threads(1)
    public byte[] oneThread() {
        return key();
    }

    @Benchmark
    @Threads(2)
    public byte[] twoThreads() {
        return key();
    }
}
