package dev.wsproxy.benchmark.jmh;

import java.nio.ByteBuffer;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

import dev.wsproxy.internal.Masking;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.OpCode;
import org.eclipse.jetty.websocket.core.internal.Generator;
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
import org.openjdk.jmh.annotations.Warmup;

/**
 * The per-byte passes a WebSocket proxy built on Jetty's frame codec makes over a client's data, and nginx does not
 * (it relays the bytes as they are, still masked): Jetty's parser unmasks each client frame in place
 * ({@code Frame.Parsed}), and its generator masks the payload again while copying it into the backend leg's output
 * buffer ({@code Generator.generatePayload}); beside them, the eight-byte loops wsproxy puts into Jetty's codec
 * instead ({@code dev.wsproxy.internal.Masking}). A plain copy of the same bytes is the yardstick. One 64 KiB fragment
 * per operation, the relay's frame size; ×16 gives the cost per 1 MiB message and direction.
 *
 * <pre>java -jar examples/benchmark/target/wsproxy-benchmark.jar jmh FrameMasking</pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class FrameMaskingBenchmark {

    private static final int FRAGMENT = 64 * 1024;

    @Param({"direct", "heap"})
    public String buffers;

    private ByteBuffer payload;
    private ByteBuffer out;
    private final Generator generator = new Generator();
    private final byte[] mask = new byte[4];

    @Setup
    public void setUp() {
        boolean direct = "direct".equals(buffers);
        payload = direct ? ByteBuffer.allocateDirect(FRAGMENT) : ByteBuffer.allocate(FRAGMENT);
        out = direct ? ByteBuffer.allocateDirect(FRAGMENT) : ByteBuffer.allocate(FRAGMENT);
        byte[] data = new byte[FRAGMENT];
        ThreadLocalRandom.current().nextBytes(data);
        payload.put(data).flip();
        ThreadLocalRandom.current().nextBytes(mask);
    }

    /** What the parser does to each client fragment: unmask it in place. */
    @Benchmark
    public Frame unmaskInPlace() {
        return new Frame.Parsed((byte) (0x80 | OpCode.BINARY), mask.clone(), payload.duplicate(), null);
    }

    /** What the backend leg's flusher does: mask the payload while copying it into the output buffer. */
    @Benchmark
    public ByteBuffer maskWhileCopying() {
        Frame frame = new Frame(OpCode.BINARY, true, payload.duplicate());
        frame.setMask(mask);
        out.clear().limit(0); // empty, in Jetty's flush mode: the generator appends
        generator.generatePayload(frame, out);
        return out;
    }

    /** What wsproxy's client leg does instead of Jetty's unmasking: eight bytes a step ({@code Masking}). */
    @Benchmark
    public ByteBuffer unmaskInPlaceEightBytes() {
        ByteBuffer buffer = payload.duplicate();
        Masking.unmask(buffer, mask);
        return buffer;
    }

    /** What wsproxy's backend leg does instead of Jetty's masking copy: eight bytes a step ({@code Masking}). */
    @Benchmark
    public ByteBuffer maskWhileCopyingEightBytes() {
        out.clear();
        Masking.maskCopy(payload.duplicate(), out, mask);
        return out;
    }

    /** The yardstick: a plain copy of the same bytes. */
    @Benchmark
    public ByteBuffer copy() {
        out.clear();
        out.put(payload.duplicate());
        return out;
    }
}
