package dev.wsproxy.benchmark.jmh;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.Pipe;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

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
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One turn of Jetty's selector loop ({@code ManagedSelector}) with one ready socket, before and after the JDK
 * selector once reported many ready sockets in one select. The JDK keeps a selector's selected keys in a
 * {@code HashSet} whose table grows with the largest batch and never shrinks; Jetty walks that set twice per select
 * (to run the keys, then to update their interest) and clears it, each time over the whole table. A proxy that once
 * saw a burst of several hundred sockets ready at once (the 500-connection echo does) pays for the empty table on
 * every select after, however quiet it gets (docs/benchmarks.md, "Seventh round", for what that costs a proxy).
 *
 * <p>{@code ready} sockets are made ready for one select in {@link #setUp}, then all but one drained: the loop
 * measured is {@code selectNow}, Jetty's two walks and the clear, with one key selected.
 *
 * <pre>java -jar examples/benchmark/target/wsproxy-benchmark.jar jmh SelectedKeys</pre>
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class SelectedKeysBenchmark {

    /** How many sockets were ready at once in the largest select so far: 1 for a selector that never saw a batch. */
    @Param({"1", "100", "1000"})
    public int ready;

    private Selector selector;
    private final List<Pipe> pipes = new ArrayList<>();

    @Setup
    public void setUp() throws IOException {
        selector = Selector.open();
        for (int i = 0; i < ready; i++) {
            Pipe pipe = Pipe.open();
            pipe.source().configureBlocking(false);
            pipe.source().register(selector, SelectionKey.OP_READ);
            pipe.sink().write(ByteBuffer.wrap(new byte[] {1}));
            pipes.add(pipe);
        }
        int selected = selector.selectNow();
        if (selected != ready) {
            throw new IllegalStateException(selected + " of " + ready + " selected");
        }
        selector.selectedKeys().clear();
        ByteBuffer drain = ByteBuffer.allocate(1);
        for (Pipe pipe : pipes.subList(1, pipes.size())) {
            pipe.source().read(drain.clear());
        }
    }

    @TearDown
    public void tearDown() throws IOException {
        selector.close();
        for (Pipe pipe : pipes) {
            pipe.source().close();
            pipe.sink().close();
        }
    }

    /** {@code selectNow}, then what Jetty's {@code SelectorProducer} does with the selected keys. */
    @Benchmark
    public int selectAndWalk() throws IOException {
        int sum = selector.selectNow();
        Set<SelectionKey> keys = selector.selectedKeys();
        for (SelectionKey key : keys) { // processSelected
            sum += key.readyOps();
        }
        for (SelectionKey key : keys) { // updateKeys
            sum += key.interestOps();
        }
        keys.clear();
        return sum;
    }
}
