package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * Raw clients opened one after the other within milliseconds, and the first frame each receives from the proxy, timed
 * by a reader thread of its own: for a timer the proxy arms per session (the maximum lifetime), which must not fire
 * together for sessions opened together.
 */
final class FirstFrames {

    /**
     * A client's first frame, and when it came: in ms after the client started connecting (never sooner than the
     * proxy's timer: its clock starts later) and after it read the {@code 101} (the proxy's clock starts about then:
     * when the session opens).
     */
    record Timed(RawWebSocket.Frame frame, long sinceConnecting, long sinceConnected) {
    }

    private FirstFrames() {
    }

    /** Opens {@code count} clients to {@code path}, one after the other, and returns the first frame of each. */
    static List<Timed> of(WebSocketProxy proxy, String path, int count) throws Exception {
        List<RawWebSocket> clients = new ArrayList<>();
        List<CompletableFuture<Timed>> firsts = new ArrayList<>();
        ExecutorService readers = Executors.newFixedThreadPool(count);
        try {
            for (int i = 0; i < count; i++) {
                long connecting = System.nanoTime();
                RawWebSocket client = RawWebSocket.connect(Clients.ws(proxy, path + "/" + i));
                clients.add(client);
                long connected = System.nanoTime();
                firsts.add(CompletableFuture.supplyAsync(() -> {
                    try {
                        RawWebSocket.Frame frame = client.read();
                        long now = System.nanoTime();
                        return new Timed(frame, TimeUnit.NANOSECONDS.toMillis(now - connecting),
                                TimeUnit.NANOSECONDS.toMillis(now - connected));
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                }, readers));
            }
            List<Timed> timed = new ArrayList<>();
            for (CompletableFuture<Timed> first : firsts) {
                timed.add(first.get(10, TimeUnit.SECONDS));
            }
            return timed;
        } finally {
            for (RawWebSocket client : clients) {
                try {
                    client.close();
                } catch (IOException e) {
                    // Closing the others matters more; the test has its answer or its failure already.
                }
            }
            // Each reader ends once its socket is closed; not asserted here, where it would hide the test's failure.
            readers.shutdownNow();
            readers.awaitTermination(10, TimeUnit.SECONDS);
        }
    }

    /**
     * Asserts that the frames came after timers spread over the 15 % below {@code policyMillis}: none sooner than
     * that, one sooner than {@code policyMillis} itself, and the first and the last at least 100 ms apart. For 16 or
     * more clients and {@code policyMillis} of 4 s or more (a window of 600 ms), a spread that small has a chance
     * far below one in a million, and a stall of the machine would have to last about half a second in the window;
     * without the spread, the times differ by what connecting and waking the readers take (under 40 ms measured).
     */
    static void assertSpreadBelow(List<Timed> timed, long policyMillis) {
        assertThat(timed).as("clients").hasSizeGreaterThanOrEqualTo(16);
        assertThat(policyMillis).as("the policy's duration, ms").isGreaterThanOrEqualTo(4_000);
        List<Long> sinceConnecting = timed.stream().map(Timed::sinceConnecting).toList();
        assertThat(sinceConnecting).as("ms after each client started connecting")
                .allSatisfy(millis -> assertThat(millis).isGreaterThanOrEqualTo(policyMillis * 85 / 100))
                .anySatisfy(millis -> assertThat(millis).as("sooner than the policy's").isLessThan(policyMillis));
        List<Long> sinceConnected = timed.stream().map(Timed::sinceConnected).toList();
        long first = sinceConnected.stream().mapToLong(Long::longValue).min().orElseThrow();
        long last = sinceConnected.stream().mapToLong(Long::longValue).max().orElseThrow();
        assertThat(last - first).as("the spread, ms after each 101; all: %s", sinceConnected)
                .isGreaterThanOrEqualTo(100);
    }
}
