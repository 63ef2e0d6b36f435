package dev.wsproxy;

import static dev.wsproxy.RawFrames.bytes;
import static dev.wsproxy.RawFrames.concat;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Matrix rows F6 and F7 on the client leg, in the variants {@link FramingViolationsTest} and {@link RelayTest} leave
 * out. A raw client writes the frames of each case in one write; a raw backend records every frame the proxy sends it
 * and answers any close frame with {@code 4100 backend-reply}. Each case asserts every frame and the end of the stream
 * on both peers, then that the proxy holds nothing.
 *
 * <p>F6: text that is not UTF-8 (a whole message; a sequence cut by a fragment boundary, including ones whose first
 * impossible byte is in the next fragment; a message whose last fragment ends inside a sequence; overlong forms;
 * surrogates; code points above U+10FFFF). The client gets {@code 1007 invalid UTF-8}, the backend
 * {@code 1001 client: invalid UTF-8} after only the fragments that are valid so far, never a final one, and the
 * listener reports the proxy as the initiator.
 *
 * <p>F7: a close frame with a code that may not be sent (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000) or a
 * one-byte payload gets Jetty's {@code 1002} with its reason, a close reason that is not UTF-8 Jetty's {@code 1007};
 * either way the backend is told {@code 1001 client connection lost}, as for a lost client (configuration.md), and
 * nothing else. Codes 1000, 3000 and 4999 with a reason (multi-byte UTF-8, up to the 123-byte maximum) reach the
 * backend byte for byte, and the backend's own answer reaches the client as the reply.
 */
class ClientFramingVariantsTest {

    private static final String END = "end of stream";

    private final BlockingQueue<String> atBackend = new LinkedBlockingQueue<>();
    private final SessionEvents events = new SessionEvents();
    private RawBackend backend;
    private WebSocketProxy proxy;

    @BeforeEach
    void start() throws Exception {
        backend = RawBackend.upgradingThen(this::recordAndAnswerCloses);
        proxy = ProxyBuilder.create().listen("127.0.0.1", 0).route("/", backend.backend()).listener(events).build();
        proxy.start();
    }

    @AfterEach
    void stop() throws Exception {
        Clients.tearDown(proxy, null, backend);
    }

    /** The client's frames, and the data frames the backend gets before its close (valid so far, never final). */
    static Stream<Arguments> invalidUtf8() {
        return Stream.of(
                Arguments.of("a whole message", text(true, 'o', 'k', 0xC3, 0x28), List.of()),
                Arguments.of("a sequence cut by a fragment boundary, a final fragment after it",
                        concat(text(false, 'o', 'k', 0xE2, 0x82), continuation(false, 0x28), continuation(true, '!')),
                        List.of("text, not final: 6F 6B E2 82")),
                Arguments.of("a last fragment that ends inside a sequence",
                        concat(text(false, 'o', 'k'), continuation(true, 0xE2, 0x82)),
                        List.of("text, not final: 6F 6B")),
                Arguments.of("a whole message that ends inside a sequence", text(true, 'o', 'k', 0xF0, 0x9F, 0x98),
                        List.of()),
                Arguments.of("overlong 2-byte form C0 AF", text(true, 0xC0, 0xAF), List.of()),
                Arguments.of("overlong 3-byte form E0 80 AF", text(true, 0xE0, 0x80, 0xAF), List.of()),
                Arguments.of("overlong 4-byte form F0 80 80 AF", text(true, 0xF0, 0x80, 0x80, 0xAF), List.of()),
                Arguments.of("overlong E0 | 80 AF across fragments",
                        concat(text(false, 'o', 'k', 0xE0), continuation(true, 0x80, 0xAF)),
                        List.of("text, not final: 6F 6B E0")),
                Arguments.of("surrogate U+D800 (ED A0 80)", text(true, 0xED, 0xA0, 0x80), List.of()),
                Arguments.of("surrogate U+DFFF (ED BF BF)", text(true, 0xED, 0xBF, 0xBF), List.of()),
                Arguments.of("surrogate ED | A0 80 across fragments",
                        concat(text(false, 0xED), continuation(true, 0xA0, 0x80)),
                        List.of("text, not final: ED")),
                Arguments.of("U+110000 (F4 90 80 80)", text(true, 0xF4, 0x90, 0x80, 0x80), List.of()),
                Arguments.of("F4 | 90 80 80 across fragments",
                        concat(text(false, 0xF4), continuation(true, 0x90, 0x80, 0x80)),
                        List.of("text, not final: F4")));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("invalidUtf8")
    void closesTheClientWith1007AndTheBackendWith1001AndCompletesNoMessage(String name, byte[] frames,
            List<String> relayed) throws Exception {
        List<String> atClient;
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/utf8"))) {
            raw.sendRaw(frames);
            atClient = readUntilEnd(raw);
        }
        List<String> expected = new ArrayList<>(relayed);
        expected.add("close 1001 client: invalid UTF-8");
        expected.add(END);
        assertThat(backendUntilEnd()).as("what the backend got").containsExactlyElementsOf(expected);
        assertThat(atClient).as("what the client got").containsExactly("close 1007 invalid UTF-8", END);
        assertThat(events.nextClose().initiator()).isEqualTo(SessionClose.Initiator.PROXY);
    }

    /** A close frame the client sends, and the close frame Jetty's parser answers it with. */
    static Stream<Arguments> invalidCloseFrames() {
        Stream<Arguments> codes = Stream.of(0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000).map(code ->
                Arguments.of("code " + code, closeFrame(code >>> 8, code & 0xFF, 'x'),
                        "close 1002 Invalid CLOSE Code: " + code));
        Stream<Arguments> others = Stream.of(
                Arguments.of("one-byte payload", closeFrame(0x03), "close 1002 Invalid CLOSE payload"),
                Arguments.of("code 1000, reason C3 28", closeFrame(0x03, 0xE8, 'o', 'k', 0xC3, 0x28),
                        "close 1007 Invalid UTF-8"),
                Arguments.of("code 3000, reason ending inside a sequence", closeFrame(0x0B, 0xB8, 'o', 'k', 0xE2, 0x82),
                        "close 1007 Invalid UTF-8"),
                Arguments.of("code 4000, reason with a surrogate", closeFrame(0x0F, 0xA0, 0xED, 0xA0, 0x80),
                        "close 1007 Invalid UTF-8"),
                Arguments.of("code 1000, reason with an overlong form", closeFrame(0x03, 0xE8, 0xC0, 0xAF),
                        "close 1007 Invalid UTF-8"));
        return Stream.concat(codes, others);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("invalidCloseFrames")
    void answersAnInvalidCloseFrameWithAnErrorAndTellsTheBackendTheClientIsLost(String name, byte[] frame,
            String toClient) throws Exception {
        List<String> atClient;
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/close"))) {
            raw.sendRaw(frame);
            atClient = readUntilEnd(raw);
        }
        assertThat(backendUntilEnd()).as("what the backend got")
                .containsExactly("close 1001 client connection lost", END);
        assertThat(atClient).as("what the client got").containsExactly(toClient, END);
    }

    static Stream<Arguments> validCloses() {
        return Stream.of(
                Arguments.of(1000, "bye ✓ 😀"),
                Arguments.of(3000, "from-client"),
                Arguments.of(4999, "ü".repeat(61) + "!"), // 123 bytes, the most a close frame carries
                Arguments.of(4999, ""));
    }

    @ParameterizedTest(name = "code {0}, reason \"{1}\"")
    @MethodSource("validCloses")
    void relaysTheClientsCloseVerbatimAndTheBackendsAnswerBack(int code, String reason) throws Exception {
        List<String> atClient;
        try (RawWebSocket raw = RawWebSocket.connect(Clients.ws(proxy, "/bye"))) {
            raw.sendRaw(RawFrames.close(code, reason, true));
            atClient = readUntilEnd(raw);
        }
        assertThat(backendUntilEnd()).as("what the backend got").containsExactly("close " + code + " " + reason, END);
        assertThat(atClient).as("what the client got").containsExactly("close 4100 backend-reply", END);
        SessionClose close = events.nextClose();
        assertThat(List.of(close.initiator(), close.clientCode(), close.clientReason(), close.backendCode(),
                close.backendReason())).containsExactly(SessionClose.Initiator.CLIENT, code, reason, 4100,
                "backend-reply");
    }

    /** The backend's script: records every frame and the end of the stream, answers the first close frame. */
    private void recordAndAnswerCloses(Socket socket, OutputStream out) throws IOException {
        socket.setSoTimeout(10_000);
        InputStream in = socket.getInputStream();
        boolean answered = false;
        for (int frames = 0; frames < 20; frames++) {
            RawFrames.Frame frame;
            try {
                frame = RawFrames.read(in);
            } catch (EOFException e) {
                atBackend.add(END);
                return;
            } catch (IOException e) {
                atBackend.add("error: " + e);
                throw e;
            }
            atBackend.add(describe(frame.opcode(), frame.fin(), frame.payload()));
            if (frame.opcode() == RawFrames.CLOSE && !answered) {
                answered = true;
                RawFrames.write(out, RawFrames.close(4100, "backend-reply", false));
            }
        }
        atBackend.add("more than 20 frames");
    }

    /** What the backend recorded, up to the end of its stream (or the error that ended its reading). */
    private List<String> backendUntilEnd() throws InterruptedException {
        List<String> recorded = new ArrayList<>();
        for (int i = 0; i < 25; i++) {
            String next = atBackend.poll(10, TimeUnit.SECONDS);
            if (next == null) {
                recorded.add("nothing more within 10 s");
                return recorded;
            }
            recorded.add(next);
            if (next.equals(END) || next.startsWith("error: ") || next.startsWith("more than")) {
                return recorded;
            }
        }
        return recorded;
    }

    /** Every frame the client gets, then how its stream ended. */
    private static List<String> readUntilEnd(RawWebSocket raw) {
        List<String> frames = new ArrayList<>();
        while (frames.size() < 10) {
            try {
                RawWebSocket.Frame frame = raw.read();
                frames.add(describe(frame.opcode(), frame.fin(), frame.payload()));
            } catch (EOFException e) {
                frames.add(END);
                return frames;
            } catch (IOException e) {
                frames.add(e.toString());
                return frames;
            }
        }
        frames.add("more than 10 frames");
        return frames;
    }

    /** {@code close CODE REASON}, {@code close, no code}, or the kind of data frame and its payload in hex. */
    private static String describe(int opcode, boolean fin, byte[] payload) {
        if (opcode == RawFrames.CLOSE) {
            return payload.length < 2 ? "close, no code"
                    : "close " + (((payload[0] & 0xFF) << 8) | (payload[1] & 0xFF)) + " "
                            + new String(payload, 2, payload.length - 2, StandardCharsets.UTF_8);
        }
        String kind = switch (opcode) {
            case RawFrames.TEXT -> "text";
            case RawFrames.CONTINUATION -> "continuation";
            default -> "opcode " + opcode;
        };
        return kind + (fin ? "" : ", not final") + ": "
                + HexFormat.ofDelimiter(" ").withUpperCase().formatHex(payload);
    }

    private static byte[] text(boolean fin, int... payload) {
        return RawFrames.encode(fin, RawFrames.TEXT, bytes(payload), true);
    }

    private static byte[] continuation(boolean fin, int... payload) {
        return RawFrames.encode(fin, RawFrames.CONTINUATION, bytes(payload), true);
    }

    private static byte[] closeFrame(int... payload) {
        return RawFrames.encode(true, RawFrames.CLOSE, bytes(payload), true);
    }

}
