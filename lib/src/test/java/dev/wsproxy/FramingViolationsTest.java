package dev.wsproxy;

import static dev.wsproxy.RawFrames.bytes;
import static dev.wsproxy.RawFrames.concat;
import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Frames that break RFC 6455 end only the offending session: the client gets 1002 (1009 for an impossible length),
 * the backend is told with 1001 while the client's connection is still open (so it is the proxy's close, not the
 * news of a lost client), nothing of the bad frame is relayed, whatever its type, and no session is left open.
 */
class FramingViolationsTest {

    /** The one case with a valid frame before the violation. */
    private static final String FRAGMENT_THEN_TEXT = "new text inside a fragmented message";

    private RawBackend backend;
    private WebSocketProxy proxy;

    @BeforeEach
    void start() throws Exception {
        backend = RawBackend.recording();
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", backend.backend()).build();
        proxy.start();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, null, backend);
    }

    static Stream<Arguments> violations() {
        Stream<Arguments> otherOpcodes = Stream.of(0x4, 0x5, 0x6, 0x7, 0xC, 0xD, 0xE, 0xF).map(opcode ->
                Arguments.of(String.format("unknown opcode 0x%X", opcode), 1002, masked(0x80 | opcode, "x")));
        return Stream.concat(otherOpcodes, Stream.of(
                Arguments.of("unmasked text frame", 1002, bytes(0x81, 0x02, 'h', 'i')),
                Arguments.of("RSV1 without an extension", 1002, masked(0xC1, "hi")),
                Arguments.of("RSV2 set", 1002, masked(0xA1, "hi")),
                Arguments.of("RSV3 set", 1002, masked(0x91, "hi")),
                Arguments.of("unknown data opcode 0x3", 1002, masked(0x83, "hi")),
                Arguments.of("unknown control opcode 0xB", 1002, masked(0x8B, "")),
                // CVE-2026-19204: unknown opcode with a 64-bit length of 0x7FFFFFFF and no payload.
                Arguments.of("huge unknown-opcode frame", 1002, bytes(0x83, 0xFF, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF,
                        1, 2, 3, 4)),
                Arguments.of("64-bit length with the top bit set", 1009, bytes(0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0,
                        1, 2, 3, 4)),
                Arguments.of("fragmented ping", 1002, masked(0x09, "p")),
                Arguments.of("ping of 126 bytes", 1002, maskedLong(0x89, 126)),
                Arguments.of("continuation without a start", 1002, masked(0x80, "x")),
                Arguments.of(FRAGMENT_THEN_TEXT, 1002, concat(masked(0x01, "a"), masked(0x81, "b"))),
                Arguments.of("close code 1005 on the wire", 1002, maskedBytes(0x88, bytes(0x03, 0xED))),
                Arguments.of("close code 999", 1002, maskedBytes(0x88, bytes(0x03, 0xE7))),
                Arguments.of("one-byte close payload", 1002, maskedBytes(0x88, bytes(0x03)))));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("violations")
    void endsOnlyTheOffendingSession(String name, int expectedCode, byte[] frame) throws Exception {
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/bad"))) {
            raw.sendRaw(frame);
            assertThat(raw.readClose().closeCode()).as("close code for %s", name).isEqualTo(expectedCode);
            assertThat(backend.nextEnd(5)).as("the backend's leg, the client still connected").isEqualTo("close:1001");
        }
        // Frames are relayed as they arrive: the valid fragment before a violation has gone on (an unfinished message
        // the close then ends), nothing of the bad frame has.
        List<Integer> relayed = name.equals(FRAGMENT_THEN_TEXT) ? List.of(0x1, 0x8) : List.of(0x8);
        assertThat(backend.frames).as("what reached the backend").extracting(RawFrames.Frame::opcode)
                .containsExactlyElementsOf(relayed);
    }

    /**
     * Bytes after a client's close frame are not a frame of the session (RFC 6455 section 5.5.1): a text frame sent in
     * the same write as the close is dropped, the backend gets the client's close as it came, and its answer reaches
     * the client as the close's reply (matrix M9). Without the proxy's parser dropping it, Jetty, which reads on after
     * a close to see the end of the stream, failed the client's connection on that frame before the answer came.
     */
    @Test
    void dropsWhatAClientSendsAfterItsCloseFrameAndCompletesTheClose() throws Exception {
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/late"))) {
            raw.sendRaw(concat(maskedBytes(0x88, bytes(0x03, 0xE8, 'b', 'y', 'e')), masked(0x81, "late")));
            assertThat(backend.nextEnd(5)).isEqualTo("close:1000");
            assertThat(raw.readClose().closeCode()).isEqualTo(1000);
        }
        assertThat(backend.frames).extracting(RawFrames.Frame::opcode).containsExactly(0x8);
        assertThat(backend.frames.peek().payload()).containsExactly(0x03, 0xE8, 'b', 'y', 'e');
    }

    /**
     * A client that breaks a rule after the proxy relayed it the backend's close (invalid UTF-8 while it still owes
     * its answer) gets no second close, but is read on: its answer ends the session at once, as it came (the leg was
     * no longer read, and the session waited for the close timeout, a minute here).
     */
    @Test
    void readsTheAnswerOfAClientThatBreaksARuleWhileItsCloseIsOwed() throws Exception {
        RawBackend closing = RawBackend.upgradingThen((socket, out) -> RawFrames.write(out,
                RawFrames.close(1000, "bye", false)));
        SessionEvents events = new SessionEvents();
        try (WebSocketProxy closingProxy = ProxyBuilder.create().listen("127.0.0.1", 0).listener(events)
                .route("/", r -> r.backends(closing.backend())
                        .timeoutPolicy(TimeoutPolicy.custom().close(Duration.ofMinutes(1)).build()))
                .build()) {
            closingProxy.start();
            try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(closingProxy, "/owed"))) {
                RawWebSocket.assertCloseFrame(raw.readClose(), 1000, "bye");
                raw.sendRaw(maskedBytes(0x81, bytes(0xC3, 0x28)));
                raw.sendClose(1000, "");

                SessionClose close = events.nextClose();
                assertThat(close.clientCode()).as("the client's answer").isEqualTo(1000);
                assertThat(closing.nextEnd(5)).as("the backend's close answered").isEqualTo("close:1001");
            }
        } finally {
            closing.close();
        }
    }

    /**
     * Matrix row F8 on the client leg, with the frames that reached the backend: a message over {@code maxMessageSize}
     * (1000 bytes here) in one frame, or in two fragments of 600, gets {@code 1009 message too big} and the backend
     * {@code 1001 client: message too big} while the client is still connected. What passes the limit is never
     * relayed: the backend gets at most the 1000 bytes before it (none of the single frame when it arrives in one read,
     * the first fragment of the two), never a final frame, then the close (the relay counts the message before it
     * forwards a frame or a piece of one, and does not rely on Jetty's whole-message limits, which its frame-by-frame
     * relay skips).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("oversized")
    void neverRelaysTheFrameThatTakesAMessageOverTheLimit(String name, byte[] frames, int relayed)
            throws Exception {
        RawBackend small = RawBackend.recording();
        try (WebSocketProxy smallProxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", small.backend())
                .maxMessageSize(1000).build()) {
            smallProxy.start();
            try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(smallProxy, "/big"))) {
                raw.sendRaw(frames);
                RawWebSocket.assertCloseFrame(raw.readClose(), 1009, "message too big");
                assertThat(small.nextEnd(5)).as("the backend's leg, the client still connected")
                        .isEqualTo("close:1001");
            }
            List<RawFrames.Frame> atBackend = List.copyOf(small.frames);
            RawFrames.assertCloseFrame(atBackend.get(atBackend.size() - 1), 1001, "client: message too big");
            List<RawFrames.Frame> data = atBackend.subList(0, atBackend.size() - 1);
            assertThat(data).as("no message completed at the backend").noneMatch(RawFrames.Frame::fin);
            assertThat(data.stream().mapToInt(frame -> frame.payload().length).sum()).as("bytes relayed")
                    .isEqualTo(relayed);
            Clients.assertNoLeaks(smallProxy, null);
        } finally {
            small.close();
        }
    }

    static Stream<Arguments> oversized() {
        return Stream.of(
                Arguments.of("one frame of 1001 bytes", RawFrames.encode(RawFrames.BINARY, new byte[1001], true), 0),
                Arguments.of("two fragments of 600 bytes", concat(
                        RawFrames.encode(false, RawFrames.BINARY, new byte[600], true),
                        RawFrames.encode(true, RawFrames.CONTINUATION, new byte[600], true)), 600));
    }

    private static byte[] masked(int first, String payload) {
        return maskedBytes(first, payload.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] maskedLong(int first, int length) {
        byte[] frame = new byte[2 + 2 + 4 + length];
        frame[0] = (byte) first;
        frame[1] = (byte) (0x80 | 126);
        frame[2] = (byte) (length >>> 8);
        frame[3] = (byte) length;
        return frame; // mask 0, payload zeros
    }

    /** A masked frame with a zero mask, so the payload goes as it is. */
    private static byte[] maskedBytes(int first, byte[] payload) {
        byte[] frame = new byte[2 + 4 + payload.length];
        frame[0] = (byte) first;
        frame[1] = (byte) (0x80 | payload.length);
        System.arraycopy(payload, 0, frame, 6, payload.length);
        return frame;
    }

}
