package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.UnaryOperator;

import org.eclipse.jetty.websocket.api.Callback;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The relay's own limits (matrix rows F9 and F11): a cap on the frames of one message against floods of empty or tiny
 * continuations, which never closes a sender whose frames merely arrive in pieces; and an optional per-session rate
 * of messages, pings and pongs from the client.
 */
class RelayLimitsTest {

    private final List<AutoCloseable> resources = new ArrayList<>();
    private TestBackend testBackend;
    private WebSocketProxy proxy;
    private Clients clients;

    @AfterEach
    void stop() throws Exception {
        if (proxy == null) {
            for (AutoCloseable resource : resources) {
                resource.close();
            }
            return;
        }
        Clients.tearDown(proxy, clients, resources.toArray(AutoCloseable[]::new));
    }

    private void startProxy(Backend backend, UnaryOperator<ProxyBuilder> settings) throws Exception {
        proxy = settings.apply(ProxyBuilder.create().listen("127.0.0.1", 0).route("/", backend)).build();
        proxy.start();
    }

    private void startWithTestBackend(UnaryOperator<ProxyBuilder> settings) throws Exception {
        testBackend = new TestBackend("b1");
        resources.add(testBackend);
        startProxy(testBackend.backend(), settings);
    }

    private RawBackend startWithRawBackend(UnaryOperator<ProxyBuilder> settings) throws Exception {
        RawBackend backend = RawBackend.recording();
        resources.add(backend);
        startProxy(backend.backend(), settings);
        return backend;
    }

    /** A masked client frame (mask key 0, which RFC 6455 allows), final or not. */
    private static byte[] frame(boolean fin, int opcode, byte[] payload) {
        byte[] unmasked = RawFrames.encode(fin, opcode, payload, false);
        int header = unmasked.length - payload.length;
        byte[] masked = new byte[unmasked.length + 4];
        System.arraycopy(unmasked, 0, masked, 0, header);
        masked[1] |= (byte) 0x80;
        System.arraycopy(payload, 0, masked, header + 4, payload.length);
        return masked;
    }

    private static byte[] repeat(byte[] frame, int times) {
        ByteArrayOutputStream all = new ByteArrayOutputStream(frame.length * times);
        for (int i = 0; i < times; i++) {
            all.writeBytes(frame);
        }
        return all.toByteArray();
    }

    /** Frames other than close the raw backend got before the proxy's close frame, which must be 1001 {@code reason}. */
    private static List<RawFrames.Frame> framesUntilClose(RawBackend backend, String reason)
            throws InterruptedException {
        List<RawFrames.Frame> data = new ArrayList<>();
        while (true) {
            RawFrames.Frame frame = backend.frames.poll(10, TimeUnit.SECONDS);
            assertThat(frame).as("the backend got a close frame").isNotNull();
            if (frame.opcode() == RawFrames.CLOSE) {
                assertThat(frame.closeCode()).isEqualTo(1001);
                assertThat(frame.closeReason()).isEqualTo(reason);
                return data;
            }
            data.add(frame);
        }
    }

    // ---- fragments per message (F9) ----

    @Test
    void closesAMillionEmptyContinuationsWith1009AtTheDefaultCap() throws Exception {
        RawBackend backend = startWithRawBackend(b -> b);
        int flood = 1_000_000;
        AtomicLong written = new AtomicLong();
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/flood"))) {
            raw.sendRaw(frame(false, RawFrames.TEXT, "a".getBytes(StandardCharsets.UTF_8)));
            byte[] batch = repeat(frame(false, RawFrames.CONTINUATION, new byte[0]), 10_000);
            Thread writer = new Thread(() -> {
                try {
                    for (int sent = 0; sent < flood; sent += 10_000) {
                        raw.sendRaw(batch);
                        written.addAndGet(10_000);
                    }
                } catch (IOException e) {
                    // The proxy ended the connection: what the test waits for.
                }
            }, "flood-writer");
            writer.setDaemon(true);
            writer.start();

            RawWebSocket.Frame close = raw.readClose();
            assertThat(close.closeCode()).isEqualTo(1009);
            assertThat(close.text()).isEqualTo("too many fragments");
            raw.abort();
            writer.join(TimeUnit.SECONDS.toMillis(10));
            assertThat(writer.isAlive()).as("flood writer stopped").isFalse();
        }
        List<RawFrames.Frame> relayed = framesUntilClose(backend, "client: too many fragments");
        assertThat(relayed).as("frames relayed before the cap").hasSizeBetween(2,
                1 + ProxyBuilder.DEFAULT_MAX_FRAGMENTS_PER_MESSAGE);
        assertThat(relayed).as("no message was completed").noneMatch(RawFrames.Frame::fin);
    }

    @Test
    void closesAFloodOfOneByteContinuationsSentInOneWrite() throws Exception {
        RawBackend backend = startWithRawBackend(b -> b.maxFragmentsPerMessage(100));
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/flood"))) {
            raw.sendRaw(frame(false, RawFrames.TEXT, "a".getBytes(StandardCharsets.UTF_8)));
            raw.sendRaw(repeat(frame(false, RawFrames.CONTINUATION, "b".getBytes(StandardCharsets.UTF_8)), 1_000));

            RawWebSocket.Frame close = raw.readClose();
            assertThat(close.closeCode()).isEqualTo(1009);
            assertThat(close.text()).isEqualTo("too many fragments");
            raw.answerClose(1009);
        }
        List<RawFrames.Frame> relayed = framesUntilClose(backend, "client: too many fragments");
        assertThat(relayed).as("frames relayed before the cap").hasSizeLessThan(1_000);
        assertThat(relayed).noneMatch(RawFrames.Frame::fin);
    }

    /** A frame that reaches the proxy over many network reads is one fragment, however many pieces Jetty makes. */
    @Test
    void countsAFrameTricklingInOverManyReadsAsOneFragment() throws Exception {
        RawBackend backend = startWithRawBackend(b -> b.maxFragmentsPerMessage(1));
        int chunks = 20;
        int chunk = 200; // pieces of 128 bytes or more: a piece smaller than that always counts
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/trickle"))) {
            byte[] whole = frame(true, RawFrames.BINARY, new byte[chunks * chunk]);
            int header = whole.length - chunks * chunk;
            int received = 0;
            for (int i = 0; i < chunks; i++) {
                int from = i == 0 ? 0 : header + i * chunk;
                raw.sendRaw(java.util.Arrays.copyOfRange(whole, from, header + (i + 1) * chunk));
                // The next chunk goes only once this one was relayed: each is a network read of its own.
                RawFrames.Frame piece = backend.frames.poll(10, TimeUnit.SECONDS);
                assertThat(piece).as("piece %s relayed", i).isNotNull();
                assertThat(piece.opcode()).isIn(RawFrames.BINARY, RawFrames.CONTINUATION);
                received += piece.payload().length;
                if (piece.fin()) {
                    break;
                }
            }
            assertThat(received).isEqualTo(chunks * chunk);
            raw.sendClose(1000, "done");
            assertThat(raw.readClose().closeCode()).isEqualTo(1000);
        }
        assertThat(backend.nextEnd(10)).isEqualTo("close:1000");
    }

    /**
     * 2,000 frames of 1 KiB in one write, far beyond a cap of 10 frames: frames of 1 KiB or more are never limited. The
     * proxy reads them 4 KiB at a time, so a read boundary cuts a frame every four or so, and the piece after it is
     * under 128 bytes about once in eight: counted as frames of their own, those pieces went over the cap (it took a
     * message of about 40 MiB at the default cap of 1,024).
     */
    @Test
    void neverLimitsAMessageWhoseFramesCarryAKibibyteEach() throws Exception {
        startWithTestBackend(b -> b.maxFragmentsPerMessage(10));
        int frames = 2_000;
        byte[] kib = new byte[1024];
        ByteArrayOutputStream message = new ByteArrayOutputStream();
        for (int i = 0; i < frames; i++) {
            message.writeBytes(frame(i == frames - 1, i == 0 ? RawFrames.BINARY : RawFrames.CONTINUATION, kib));
        }
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/big"))) {
            raw.sendRaw(message.toByteArray());
            int echoed = 0;
            RawWebSocket.Frame frame;
            do {
                frame = raw.read();
                assertThat(frame.opcode()).as("echo, not a close").isIn(RawWebSocket.BINARY,
                        RawWebSocket.CONTINUATION);
                echoed += frame.payload().length;
            } while (!frame.fin());
            assertThat(echoed).isEqualTo(frames * kib.length);
            raw.sendClose(1000, "");
            assertThat(raw.readClose().closeCode()).isEqualTo(1000);
        }
    }

    @Test
    void appliesTheRoutesFragmentCapOverTheProxyWideOne() throws Exception {
        testBackend = new TestBackend("b1");
        resources.add(testBackend);
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0)
                .route("/", testBackend.backend())
                .route("/strict/", r -> r.backends(testBackend.backend()).maxFragmentsPerMessage(5))
                .build();
        proxy.start();
        ByteArrayOutputStream message = new ByteArrayOutputStream();
        message.writeBytes(frame(false, RawFrames.TEXT, "a".getBytes(StandardCharsets.UTF_8)));
        for (int i = 0; i < 20; i++) {
            message.writeBytes(frame(i == 19, RawFrames.CONTINUATION, "b".getBytes(StandardCharsets.UTF_8)));
        }
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/lenient"))) {
            raw.sendRaw(message.toByteArray());
            assertThat(raw.read().text()).isEqualTo("a" + "b".repeat(20));
            raw.sendClose(1000, "");
            assertThat(raw.readClose().closeCode()).isEqualTo(1000);
        }
        assertThat(testBackend.nextClose().code()).isEqualTo(1000);
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/strict/x"))) {
            raw.sendRaw(message.toByteArray());
            assertThat(raw.readClose().closeCode()).isEqualTo(1009);
            raw.answerClose(1009);
        }
        assertThat(testBackend.nextClose()).isEqualTo(new TestBackend.Closed(1001, "client: too many fragments"));
        assertThat(testBackend.texts).as("only the lenient route's message").hasSize(1);
    }

    // ---- message rate (F11) ----

    @Test
    void closesAClientOverTheMessageRateWith1008AndTheBackendWith1001() throws Exception {
        RawBackend backend = startWithRawBackend(b -> b.messageRateLimit(2));
        ByteArrayOutputStream burst = new ByteArrayOutputStream();
        for (int i = 0; i < 50; i++) {
            burst.writeBytes(frame(true, RawFrames.TEXT, ("m" + i).getBytes(StandardCharsets.UTF_8)));
        }
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/chatty"))) {
            raw.sendRaw(burst.toByteArray());
            RawWebSocket.Frame close = raw.readClose();
            assertThat(close.closeCode()).isEqualTo(1008);
            assertThat(close.text()).isEqualTo("message rate exceeded");
            raw.answerClose(1008);
        }
        assertThat(framesUntilClose(backend, "client: message rate exceeded")).as("messages relayed before the limit")
                .hasSizeBetween(2, 10);
    }

    @Test
    void letsABurstAsLargeAsTheRateThrough() throws Exception {
        startWithTestBackend(b -> b.messageRateLimit(20));
        clients = new Clients();
        WsRecorder client = clients.connect(Clients.ws(proxy, "/burst"));
        for (int i = 0; i < 20; i++) {
            client.sendText("m" + i);
        }
        for (int i = 0; i < 20; i++) {
            assertThat(client.nextText()).isEqualTo("m" + i);
        }
        client.session.close(1000, "bye", Callback.NOOP);
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1000, "bye"));
    }

    /** Matrix row F11: a client that floods pings (or pongs) and never reads is closed by the rate, not by memory. */
    @ParameterizedTest(name = "opcode {0}")
    @ValueSource(ints = {RawFrames.PING, RawFrames.PONG})
    void closesAPingOrPongFloodWith1008(int opcode) throws Exception {
        RawBackend backend = startWithRawBackend(b -> b.messageRateLimit(10));
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/pings"))) {
            raw.sendRaw(repeat(frame(true, opcode, "p".getBytes(StandardCharsets.UTF_8)), 1_000));
            RawWebSocket.Frame close = raw.readClose();
            assertThat(close.closeCode()).isEqualTo(1008);
            raw.answerClose(1008);
        }
        assertThat(framesUntilClose(backend, "client: message rate exceeded")).as("frames relayed before the limit")
                .hasSizeBetween(10, 20).allMatch(frame -> frame.opcode() == opcode);
    }

    @Test
    void neverLimitsTheBackend() throws Exception {
        startWithTestBackend(b -> b.messageRateLimit(2));
        clients = new Clients();
        WsRecorder client = clients.connect(Clients.ws(proxy, "/push"));
        client.sendText("push:50:16");
        for (int i = 0; i < 50; i++) {
            assertThat(client.nextBinary()).hasSize(16);
        }
        client.session.sendBinary(ByteBuffer.allocate(3), Callback.NOOP);
        assertThat(client.nextBinary()).hasSize(3);
        client.session.close(1000, "bye", Callback.NOOP);
        assertThat(client.nextClose()).isEqualTo(new WsRecorder.Closed(1000, "bye"));
    }

    @Test
    void validatesTheLimitsAtOnce() {
        ProxyBuilder builder = ProxyBuilder.create();
        assertThatThrownBy(() -> builder.maxFragmentsPerMessage(0))
                .hasMessage("maxFragmentsPerMessage: 0 (expected: > 0)");
        assertThatThrownBy(() -> builder.messageRateLimit(-1))
                .hasMessage("messageRateLimit: -1 (expected: 0 to 1000000; 0 disables)");
        // Above a million a second the interval between tokens would round to nothing, and nothing be limited.
        assertThatThrownBy(() -> builder.messageRateLimit(1_000_000_001))
                .hasMessage("messageRateLimit: 1000000001 (expected: 0 to 1000000; 0 disables)");
        assertThatThrownBy(() -> builder.route("/r/", r -> r.backends(Backend.of("ws://127.0.0.1:1"))
                .maxFragmentsPerMessage(-5))).hasMessage("maxFragmentsPerMessage: -5 (expected: > 0)");
    }
}
