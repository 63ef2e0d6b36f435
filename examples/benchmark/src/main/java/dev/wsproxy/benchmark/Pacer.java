package dev.wsproxy.benchmark;

import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;

import org.HdrHistogram.Histogram;
import org.HdrHistogram.Recorder;

/**
 * The open-loop workloads' clock: message {@code n} is due {@code n / rate} seconds after the start and goes out on
 * connection {@code n mod connections}, whether or not the earlier ones are back. A target that slows down gets the
 * same offered load, so its queueing shows in the latencies (a closed loop would send less and hide it).
 *
 * <p>Sends never block (they queue in the connection when the socket is full), so the pacer keeps its schedule
 * whatever the target does. When its own core is busy it falls behind: the late messages go out as soon as it can, the
 * schedule keeps its times (it does not drift), and each message's lateness goes into {@link #takeLag()}. The round
 * trips are measured from the actual send, so that lateness is not in them: the lag histogram tells when it matters.
 */
final class Pacer implements Runnable {

    /** Sends one message on connection {@code index}; {@code false} when that connection may not take another. */
    interface Sink {
        boolean send(int index);
    }

    private final long startNanos;
    private final double nanosPerMessage;
    private final int connections;
    private final Sink sink;
    private final BooleanSupplier running;
    private final Recorder lag = new Recorder(3);
    private volatile long sent;
    private volatile boolean refused;

    /**
     * @param perSecond messages per second, over all connections
     * @param running read before each message; the pacer returns once it is {@code false}
     */
    Pacer(double perSecond, int connections, Sink sink, BooleanSupplier running) {
        if (!(perSecond > 0) || connections < 1) {
            throw new IllegalArgumentException("rate " + perSecond + "/s on " + connections + " connections");
        }
        this.startNanos = System.nanoTime();
        this.nanosPerMessage = 1e9 / perSecond;
        this.connections = connections;
        this.sink = sink;
        this.running = running;
    }

    @Override
    public void run() {
        long n = 0;
        while (running.getAsBoolean()) {
            long due = startNanos + (long) (n * nanosPerMessage);
            long early = due - System.nanoTime();
            if (early > 0) {
                LockSupport.parkNanos(early);
                continue;
            }
            if (!sink.send((int) (n % connections))) {
                refused = true;
                return;
            }
            lag.recordValue(-early);
            n++;
            sent = n;
        }
    }

    /** Messages sent so far. */
    long sent() {
        return sent;
    }

    /** How late each message sent since the previous call went out after its due time, in nanoseconds. */
    Histogram takeLag() {
        return lag.getIntervalHistogram();
    }

    /** Whether the pacer stopped because a connection refused a message. */
    boolean refused() {
        return refused;
    }
}
