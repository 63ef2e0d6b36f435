package dev.wsproxy.benchmark;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import org.HdrHistogram.Histogram;
import org.eclipse.jetty.util.Callback;
import org.eclipse.jetty.websocket.core.CloseStatus;
import org.eclipse.jetty.websocket.core.CoreSession;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.OpCode;
import org.eclipse.jetty.websocket.core.OutgoingEntry;
import org.junit.jupiter.api.Test;

/**
 * The pairing of echoes with sends, on a session that only records what is sent and a clock the test sets: no network
 * (the harness test runs the same connections through a proxy).
 */
class EchoConnectionTest {

    private final RunState state = new RunState(Long.MAX_VALUE);
    private final AtomicLong clock = new AtomicLong();
    private final Sent session = new Sent();
    private final ByteBuffer payload = Runs.payload(true, 64);

    @Test
    void pairsEachEchoWithItsOwnSendOldestFirst() {
        EchoConnection connection = open(EchoConnection.Mode.PACED);

        send(connection, 0);
        send(connection, 10);
        echo(connection, 15); // the message sent at 0
        send(connection, 20);
        echo(connection, 30); // sent at 10
        echo(connection, 100); // sent at 20

        Histogram rounds = state.interval();
        // Newest first would give 5, 10 and 100.
        assertThat(rounds.getTotalCount()).isEqualTo(3);
        assertThat(rounds.getMinValue()).isEqualTo(15);
        assertThat(rounds.getMaxValue()).isEqualTo(80);
        assertThat(state.errors()).isZero();
    }

    @Test
    void refusesAMessageOverTheRingsSizeAndKeepsPairingPastItsEnd() {
        EchoConnection connection = open(EchoConnection.Mode.PACED);
        int size = EchoConnection.MAX_IN_FLIGHT;

        // Message k is sent at 10 k; its echo comes just before message k + size is sent: each round trip is
        // 10 size - 1 when echoes pair with the oldest send, round and round the ring.
        for (int k = 0; k < size; k++) {
            assertThat(send(connection, 10L * k)).as("send %d", k).isTrue();
        }
        assertThat(connection.sendNow()).as("one more than the ring holds").isFalse();
        clock.set(10L * size - 1);
        assertThat(connection.oldestWaitNanos()).isEqualTo(10L * size - 1);
        for (int k = 0; k < 3 * size; k++) {
            echo(connection, 10L * (k + size) - 1);
            assertThat(send(connection, 10L * (k + size))).as("send %d", k + size).isTrue();
        }

        Histogram rounds = state.interval();
        assertThat(rounds.getTotalCount()).isEqualTo(3L * size);
        assertThat(rounds.valuesAreEquivalent(rounds.getMinValue(), 10L * size - 1)).isTrue();
        assertThat(rounds.valuesAreEquivalent(rounds.getMaxValue(), 10L * size - 1)).isTrue();
        assertThat(session.frames).hasSize(4 * size);
        assertThat(state.errors()).isZero();
    }

    @Test
    void sendsNothingMoreOnceTheSessionClosedOrASendFailed() {
        EchoConnection closed = open(EchoConnection.Mode.PACED);
        closed.onClosed(CloseStatus.NO_CODE_STATUS, Callback.NOOP);
        assertThat(closed.sendNow()).isFalse();

        EchoConnection failing = open(EchoConnection.Mode.PACED);
        session.fail = true;
        assertThat(failing.sendNow()).isTrue();
        assertThat(failing.sendNow()).isFalse();
        assertThat(state.errors()).as("closed by the peer, then the failed send").isEqualTo(2);
    }

    @Test
    void aClosedLoopSendsTheNextMessageWhenTheEchoIsBackWhileTheRunRuns() {
        EchoConnection connection = open(EchoConnection.Mode.CLOSED_LOOP);

        clock.set(0);
        connection.start();
        assertThat(connection.sendNow()).as("one in flight").isFalse();
        echo(connection, 50);
        echo(connection, 60);
        state.stop();
        echo(connection, 70);

        assertThat(session.frames).hasSize(3);
        assertThat(state.completedCount()).isEqualTo(3);
        assertThat(state.interval().getMaxValue()).isEqualTo(50);
        assertThat(state.errors()).isZero();
    }

    @Test
    void aProbeCompletesOnItsEchoAndSendsNoMore() {
        EchoConnection connection = open(EchoConnection.Mode.PROBE);

        clock.set(100);
        connection.start();
        echo(connection, 140);

        assertThat(connection.firstEcho).isCompletedWithValue(connection);
        assertThat(session.frames).hasSize(1);
        assertThat(state.interval().getMaxValue()).isEqualTo(40);
    }

    private EchoConnection open(EchoConnection.Mode mode) {
        EchoConnection connection = new EchoConnection(state, OpCode.TEXT, payload, mode, clock::get);
        connection.onOpen(session, Callback.NOOP);
        return connection;
    }

    private boolean send(EchoConnection connection, long nanos) {
        clock.set(nanos);
        return connection.sendNow();
    }

    /** The whole echo of one message, arriving at {@code nanos}. */
    private void echo(EchoConnection connection, long nanos) {
        clock.set(nanos);
        connection.onFrame(new Frame(OpCode.TEXT, payload.slice()), Callback.NOOP);
    }

    /** A session that keeps what is sent, and fails every send once told to. */
    private static final class Sent extends CoreSession.Empty {
        final List<Frame> frames = new ArrayList<>();
        boolean fail;

        @Override
        public void sendFrame(OutgoingEntry entry) {
            frames.add(entry.getFrame());
            if (fail) {
                entry.getCallback().failed(new IOException("broken pipe"));
            } else {
                entry.getCallback().succeeded();
            }
        }
    }
}
