package dev.wsproxy;

import static dev.wsproxy.RawFrames.bytes;
import static dev.wsproxy.RawFrames.concat;
import static dev.wsproxy.RawWebSocket.assertCloseFrame;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A hostile or broken backend after its {@code 101} (matrix rows F1 to F9 on the backend leg, M2, M3): the backend gets
 * a close frame, {@code 1002} for a protocol error, {@code 1007} for invalid UTF-8, {@code 1009} for a size the proxy
 * will not take; the client gets {@code 1014} (or, for the proxy's own limits, {@code 1001} as for a client at fault),
 * the bad frame never reaches it, no message is completed on its side, and the session, its backend count and its
 * connection slots are released.
 * Row M9 on the backend leg: a data frame a backend sends after its close frame is dropped and the close completes end
 * to end; a close from each peer at the same moment (raw sockets on both sides, each writing its close before reading
 * anything) is answered by the other's, one close frame per leg.
 */
class BackendFramingViolationsTest {

    private RawBackend backend;
    private WebSocketProxy proxy;

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, null, backend);
    }

    private void start(RawBackend.AfterUpgrade script) throws Exception {
        start(script, ProxyListener.NOOP);
    }

    private void start(RawBackend.AfterUpgrade script, ProxyListener listener) throws Exception {
        start(RawBackend.upgradingThen(script), listener);
    }

    /** With a {@code wss://} backend: the backend leg's end point is then TLS's, not the socket's. */
    private void startOverTls(RawBackend.AfterUpgrade script) throws Exception {
        start(RawBackend.upgradingThenOverTls(script, TestCertificates.LOCALHOST), ProxyListener.NOOP);
    }

    private void start(RawBackend rawBackend, ProxyListener listener) throws Exception {
        backend = rawBackend;
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0)
                .backendTls(BackendTls.trustStore(TestCertificates.LOCALHOST.pem()))
                .route("/", backend.backend())
                .maxMessageSize(1000)
                .maxFragmentsPerMessage(100)
                .maxConnections(1)
                .maxConnectionsPerIp(1)
                .listener(listener)
                .build();
        proxy.start();
    }

    /**
     * Frames written by the backend after its {@code 101}: the code the client must get, and the code of the close
     * frame the backend must get (RFC 6455 section 7.1.7: the proxy fails the backend's connection with a close frame,
     * 1002 for a protocol error, 1007 for invalid UTF-8, 1009 for a size the proxy will not take).
     */
    static Stream<Arguments> violations() {
        Stream<Arguments> otherOpcodes = Stream.of(0x4, 0x5, 0x6, 0x7, 0xC, 0xD, 0xE).map(opcode ->
                Arguments.of(String.format("unknown opcode 0x%X", opcode), server(0x80 | opcode, "x"), 1014, 1002));
        return Stream.concat(otherOpcodes, Stream.of(
                // F1: server frames must not be masked.
                Arguments.of("masked server frame", bytes(0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2), 1014, 1002),
                // F2
                Arguments.of("RSV1 without an extension", server(0xC1, "hi"), 1014, 1002),
                Arguments.of("RSV2 set", server(0xA1, "hi"), 1014, 1002),
                Arguments.of("RSV3 set", server(0x91, "hi"), 1014, 1002),
                // F3
                Arguments.of("unknown data opcode 0x3", server(0x83, "hi"), 1014, 1002),
                Arguments.of("unknown control opcode 0xB", server(0x8B, ""), 1014, 1002),
                Arguments.of("unknown opcode 0xF", server(0x8F, "x"), 1014, 1002),
                Arguments.of("huge unknown-opcode frame (CVE-2026-19204)",
                        bytes(0x83, 0x7F, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF), 1014, 1002),
                // F4
                Arguments.of("fragmented ping", server(0x09, "p"), 1014, 1002),
                Arguments.of("ping of 126 bytes", concat(bytes(0x89, 0x7E, 0, 126), new byte[126]), 1014, 1002),
                // F5
                Arguments.of("continuation without a start", server(0x80, "x"), 1014, 1002),
                Arguments.of("new text inside a fragmented message", concat(server(0x01, "a"), server(0x81, "b")),
                        1014, 1002),
                // F6: the relay's UTF-8 check.
                Arguments.of("invalid UTF-8", serverBytes(0x81, bytes(0xC3, 0x28)), 1014, 1007),
                Arguments.of("invalid UTF-8 split across fragments",
                        concat(serverBytes(0x01, bytes('o', 'k', 0xE2)), serverBytes(0x80, bytes(0x28))), 1014, 1007),
                Arguments.of("overlong UTF-8", serverBytes(0x81, bytes(0xC0, 0xAF)), 1014, 1007),
                Arguments.of("UTF-16 surrogate U+D800", serverBytes(0x81, bytes(0xED, 0xA0, 0x80)), 1014, 1007),
                // F7
                Arguments.of("close code 0", closeWith(0), 1014, 1002),
                Arguments.of("close code 999", closeWith(999), 1014, 1002),
                Arguments.of("close code 1004", closeWith(1004), 1014, 1002),
                Arguments.of("close code 1005 on the wire", closeWith(1005), 1014, 1002),
                Arguments.of("close code 1006 on the wire", closeWith(1006), 1014, 1002),
                Arguments.of("close code 1015 on the wire", closeWith(1015), 1014, 1002),
                Arguments.of("close code 1016", closeWith(1016), 1014, 1002),
                Arguments.of("close code 2999", closeWith(2999), 1014, 1002),
                Arguments.of("close code 5000", closeWith(5000), 1014, 1002),
                Arguments.of("one-byte close payload", serverBytes(0x88, bytes(0x03)), 1014, 1002),
                Arguments.of("close reason not UTF-8", serverBytes(0x88, bytes(0x0F, 0xA0, 0xC3, 0x28)), 1014,
                        1007),
                // F8: the proxy's size cap is the contract of maxMessageSize (sender 1009, other leg 1001).
                Arguments.of("message over maxMessageSize", RawFrames.encode(RawFrames.BINARY, new byte[1001], false),
                        1001, 1009),
                Arguments.of("64-bit length with the top bit set", bytes(0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0), 1014,
                        1009),
                // F9: the fragment cap, same contract as the size cap.
                Arguments.of("flood of empty continuations", concat(server(0x01, "a"), repeat(bytes(0x00, 0x00), 2_000)),
                        1001, 1009)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("violations")
    void closesBothPeersAndNeverRelaysTheBadFrame(String name, byte[] script, int clientCode, int backendCode)
            throws Exception {
        start((socket, out) -> RawFrames.write(out, script));
        List<RawWebSocket.Frame> data = new ArrayList<>();
        RawWebSocket.Frame close = readUntilClose(data);

        assertThat(close.closeCode()).as("close code for %s", name).isEqualTo(clientCode);
        // The raw backend records every frame the proxy writes to it: the first must be the close that fails its
        // connection, not a dropped connection (the backend would then see no frame) and not a relayed frame.
        RawFrames.Frame toBackend = backend.frames.poll(10, TimeUnit.SECONDS);
        assertThat(toBackend).as("the backend got a frame for %s", name).isNotNull();
        assertThat(toBackend.opcode()).as("the backend's first frame for %s", name).isEqualTo(RawFrames.CLOSE);
        assertThat(toBackend.closeCode()).as("the backend's close code for %s", name).isEqualTo(backendCode);
        assertThat(backend.nextEnd(10)).as("the backend answered the proxy's close").isEqualTo("close:" + backendCode);
        assertThat(data).as("no message completed on the client").noneMatch(RawWebSocket.Frame::fin);
        // Only the valid start of a fragmented message may pass: "a", then empty continuations, or "ok" + 0xE2.
        assertThat(data).as("nothing but a valid prefix relayed").allSatisfy(frame ->
                assertThat(new String(frame.payload(), StandardCharsets.ISO_8859_1)).isIn("a", "", "ok\u00E2"));
        assertReleased();
    }

    @Test
    void tellsTheBackend1007ForInvalidUtf8AndTheClient1014WithTheReason() throws Exception {
        start((socket, out) -> RawFrames.write(out, serverBytes(0x81, bytes(0xED, 0xA0, 0x80))));
        RawWebSocket.Frame close = readUntilClose(new ArrayList<>());
        assertThat(close.closeCode()).isEqualTo(1014);
        assertThat(close.text()).isEqualTo("backend: invalid UTF-8");
        assertThat(backendClose().closeCode()).isEqualTo(1007);
        assertReleased();
    }

    @Test
    void tellsTheBackend1009ForTooManyFragments() throws Exception {
        start((socket, out) -> RawFrames.write(out, concat(server(0x01, "a"), repeat(bytes(0x00, 0x00), 2_000))));
        RawWebSocket.Frame close = readUntilClose(new ArrayList<>());
        assertThat(close.closeCode()).isEqualTo(1001);
        assertThat(close.text()).isEqualTo("backend: too many fragments");
        RawFrames.Frame backendClose = backendClose();
        assertThat(backendClose.closeCode()).isEqualTo(1009);
        assertThat(backendClose.closeReason()).isEqualTo("too many fragments");
        assertReleased();
    }

    /** Matrix row M2: a backend that half-closes without a close frame. */
    @Test
    void closesTheClientWith1014WhenTheBackendEndsItsStreamWithoutACloseFrame() throws Exception {
        start((socket, out) -> {
            RawFrames.write(out, RawFrames.text("last words", false));
            socket.shutdownOutput();
        });
        List<RawWebSocket.Frame> data = new ArrayList<>();
        RawWebSocket.Frame close = readUntilClose(data);
        assertThat(data).extracting(RawWebSocket.Frame::text).containsExactly("last words");
        assertThat(close.closeCode()).isEqualTo(1014);
        assertThat(close.text()).isEqualTo("backend connection lost");
        assertReleased();
    }

    /** Matrix row M3: the backend resets its connection in the middle of a fragmented message. */
    @Test
    void closesTheClientWith1014AndNeverCompletesAMessageCutByABackendReset() throws Exception {
        start((socket, out) -> {
            RawFrames.write(out, RawFrames.encode(false, RawFrames.TEXT, "half".getBytes(StandardCharsets.UTF_8),
                    false));
            socket.setSoLinger(true, 0);
            socket.close();
        });
        List<RawWebSocket.Frame> data = new ArrayList<>();
        RawWebSocket.Frame close = readUntilClose(data);
        assertThat(close.closeCode()).isEqualTo(1014);
        assertThat(data).as("the message was never completed").noneMatch(RawWebSocket.Frame::fin);
        assertReleased();
    }

    /**
     * Matrix row M9, backend leg (the client leg's twin is in {@link FramingViolationsTest}): a text frame a backend
     * writes in the same write as its close frame is not a frame of the session (RFC 6455 section 5.5.1). The client
     * gets the backend's close as it came and nothing else, its reply reaches the backend as the close's answer, and
     * each peer gets exactly one close frame before the proxy ends its connection.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"ws", "wss"})
    void dropsWhatABackendSendsAfterItsCloseFrameAndCompletesTheClose(String scheme) throws Exception {
        BlockingQueue<Object> atBackend = new LinkedBlockingQueue<>();
        RawBackend.AfterUpgrade script = (socket, out) -> {
            InputStream in = socket.getInputStream();
            RawFrames.Frame go = RawFrames.read(in);
            if (!go.text().equals("go")) {
                throw new IOException("expected go, got " + go);
            }
            RawFrames.write(out, concat(RawFrames.close(4000, "backend-bye", false), RawFrames.text("late", false)));
            readUntilEnd(socket, atBackend);
        };
        if (scheme.equals("wss")) {
            startOverTls(script);
        } else {
            start(script);
        }
        List<RawWebSocket.Frame> atClient;
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/late"))) {
            raw.send(true, RawWebSocket.TEXT, "go".getBytes(StandardCharsets.UTF_8));
            RawWebSocket.Frame close = raw.read();
            assertCloseFrame(close, 4000, "backend-bye");
            raw.sendClose(4001, "client-reply");
            atClient = readUntilEnd(raw);
        }
        assertThat(atClient).as("what the client got after the backend's close").isEmpty();
        assertThat(atBackend.poll(10, TimeUnit.SECONDS)).as("the backend got the client's reply, then its end")
                .isEqualTo(new CloseFrame(4001, "client-reply"));
        assertThat(atBackend.poll(10, TimeUnit.SECONDS)).isEqualTo("eof");
        assertReleased();
    }

    /** Who writes a close first in {@link #answersEachPeersCloseWithTheOthersWhenBothCloseAtOnce}. */
    private enum First {
        /** The client; the backend writes its own once the proxy relayed the client's (unread in its socket). */
        CLIENT,
        /** The backend; the client writes its own once the proxy relayed the backend's (unread in its socket). */
        BACKEND,
        /** Both at once, released together by a barrier. */
        NEITHER
    }

    /**
     * Matrix row M9, a simultaneous close: once the client's session is open, the client and the backend each write a
     * close frame before reading anything, so the two closes cross. In turn the client's close is on the wire first
     * (the backend writes its own once the proxy relayed the client's to it, unread), the backend's first, or both at
     * once. Whichever close the proxy reads first, its close state machine takes the other as the answer (design.md,
     * "Close"): the client gets exactly the backend's close and the backend exactly the client's, no other frame
     * follows on either leg before the proxy ends the connection, the proxy reports both codes as the peers sent them
     * and the first as the initiator, and the session and its slots are freed. Fifteen rounds.
     */
    @Test
    void answersEachPeersCloseWithTheOthersWhenBothCloseAtOnce() throws Exception {
        CyclicBarrier together = new CyclicBarrier(2);
        BlockingQueue<Object> atBackend = new LinkedBlockingQueue<>();
        SessionEvents events = new SessionEvents();
        BlockingQueue<SessionClose> closes = events.closes;
        start((socket, out) -> {
            RawFrames.Frame go = RawFrames.read(socket.getInputStream());
            First first = Stream.of(First.values()).filter(value -> value.name().equals(go.text())).findFirst()
                    .orElseThrow(() -> new IOException("not a round but " + go + ": assertReleased()'s session"));
            byte[] close = RawFrames.close(4002, "backend-bye", false);
            if (first == First.CLIENT) {
                awaitUnread(socket);
            } else if (first == First.NEITHER) {
                meet(together);
            }
            RawFrames.write(out, close);
            readUntilEnd(socket, atBackend);
        }, events);
        for (int round = 0; round < 15; round++) {
            First first = First.values()[round % 3];
            List<RawWebSocket.Frame> atClient;
            try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/both"))) {
                byte[] close = RawFrames.close(4001, "client-bye", true);
                raw.send(true, RawWebSocket.TEXT, first.name().getBytes(StandardCharsets.UTF_8));
                if (first == First.BACKEND) {
                    awaitUnread(raw.socket);
                } else if (first == First.NEITHER) {
                    meet(together);
                }
                raw.sendRaw(close);
                atClient = readUntilEnd(raw);
            }
            assertThat(atClient).as("round %d (%s first): frames the client got", round, first).singleElement()
                    .satisfies(frame -> {
                        assertCloseFrame(frame, 4002, "backend-bye");
                    });
            assertThat(atBackend.poll(10, TimeUnit.SECONDS)).as("round %d (%s first): frames the backend got", round,
                    first).isEqualTo(new CloseFrame(4001, "client-bye"));
            assertThat(atBackend.poll(10, TimeUnit.SECONDS)).isEqualTo("eof");
            SessionClose close = closes.poll(10, TimeUnit.SECONDS);
            assertThat(close).as("round %d: the session ended", round).isNotNull();
            assertThat(List.of(close.clientCode(), close.clientReason(), close.backendCode(), close.backendReason()))
                    .containsExactly(4001, "client-bye", 4002, "backend-bye");
            assertThat(close.initiator()).as("round %d (%s first): the initiator", round, first).isIn(switch (first) {
                case CLIENT -> List.of(SessionClose.Initiator.CLIENT);
                case BACKEND -> List.of(SessionClose.Initiator.BACKEND);
                case NEITHER -> List.of(SessionClose.Initiator.CLIENT, SessionClose.Initiator.BACKEND);
            });
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(proxy.sessions()).isEmpty());
        }
        assertReleased();
    }

    // ---- helpers ----

    /** A close frame a raw backend received. */
    private record CloseFrame(int code, String reason) {
    }

    /**
     * Run by a raw backend: records each frame the proxy sends (a close as a {@link CloseFrame}, anything else as its
     * {@link RawFrames.Frame}), then {@code "eof"} when the proxy ends the connection, or the failure.
     */
    private static void readUntilEnd(Socket socket, BlockingQueue<Object> record) throws IOException {
        socket.setSoTimeout(10_000);
        InputStream in = socket.getInputStream();
        for (int frames = 0; frames < 10; frames++) {
            RawFrames.Frame frame;
            try {
                frame = RawFrames.read(in);
            } catch (EOFException e) {
                record.add("eof");
                return;
            } catch (IOException e) {
                record.add(e.toString());
                return;
            }
            byte[] payload = frame.payload();
            record.add(frame.opcode() != RawFrames.CLOSE ? frame : new CloseFrame(frame.closeCode(),
                    payload.length < 2 ? "" : new String(payload, 2, payload.length - 2, StandardCharsets.UTF_8)));
        }
        record.add("more than 10 frames");
    }

    /** Every frame the proxy sends the client until it ends the connection (at most 10; a read timeout fails). */
    private static List<RawWebSocket.Frame> readUntilEnd(RawWebSocket raw) throws IOException {
        List<RawWebSocket.Frame> frames = new ArrayList<>();
        while (frames.size() < 10) {
            try {
                frames.add(raw.read());
            } catch (EOFException e) {
                return frames;
            }
        }
        throw new AssertionError("more than 10 frames: " + frames);
    }

    /** Waits until bytes from the proxy are in the socket's receive buffer, without reading them. */
    private static void awaitUnread(Socket socket) throws IOException {
        InputStream in = socket.getInputStream();
        await().atMost(Duration.ofSeconds(10)).pollInterval(Duration.ofMillis(1)).until(() -> in.available() > 0);
    }

    /** Waits for the other peer at the barrier; a raw backend's script may throw only I/O errors. */
    private static void meet(CyclicBarrier barrier) throws IOException {
        try {
            barrier.await(10, TimeUnit.SECONDS);
        } catch (InterruptedException | BrokenBarrierException | TimeoutException e) {
            throw new IOException("the other peer did not come: " + e, e);
        }
    }

    /** Connects a raw client, collects data frames until the proxy's close frame, and answers it. */
    private RawWebSocket.Frame readUntilClose(List<RawWebSocket.Frame> data) throws IOException {
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/hostile"))) {
            RawWebSocket.Frame frame;
            while ((frame = raw.read()).opcode() != RawWebSocket.CLOSE) {
                data.add(frame);
            }
            raw.answerClose(frame.closeCode());
            return frame;
        }
    }

    private RawFrames.Frame backendClose() throws InterruptedException {
        while (true) {
            RawFrames.Frame frame = backend.frames.poll(10, TimeUnit.SECONDS);
            assertThat(frame).as("the backend got a close frame").isNotNull();
            if (frame.opcode() == RawFrames.CLOSE) {
                return frame;
            }
        }
    }

    /** The session, the backend's active count and both connection slots are free: a new session gets its 101. */
    private void assertReleased() throws IOException {
        await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> {
            assertThat(proxy.sessions()).isEmpty();
            assertThat(proxy.backendStatus("/")).singleElement()
                    .satisfies(status -> assertThat(status.activeSessions()).isZero());
        });
        try (RawWebSocket again = RawWebSocket.connect(Clients.ws(proxy, "/again"))) {
            assertThat(again.responseHead).startsWith("HTTP/1.1 101");
            again.abort();
        }
    }

    /** An unmasked frame with a short payload and the first byte as given (FIN, RSV, opcode). */
    private static byte[] server(int first, String payload) {
        return serverBytes(first, payload.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] serverBytes(int first, byte[] payload) {
        byte[] frame = new byte[2 + payload.length];
        frame[0] = (byte) first;
        frame[1] = (byte) payload.length;
        System.arraycopy(payload, 0, frame, 2, payload.length);
        return frame;
    }

    private static byte[] closeWith(int code) {
        return serverBytes(0x88, bytes(code >>> 8, code & 0xFF));
    }

    private static byte[] repeat(byte[] frame, int times) {
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        for (int i = 0; i < times; i++) {
            all.writeBytes(frame);
        }
        return all.toByteArray();
    }
}
