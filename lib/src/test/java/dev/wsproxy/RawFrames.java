package dev.wsproxy;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Base64;
import java.util.concurrent.ThreadLocalRandom;

/** A minimal RFC 6455 frame codec for raw-socket peers, and the handshake's accept computation. */
final class RawFrames {

    static final int CONTINUATION = 0x0;
    static final int TEXT = 0x1;
    static final int BINARY = 0x2;
    static final int CLOSE = 0x8;
    static final int PING = 0x9;
    static final int PONG = 0xA;

    /** The RFC 6455 section 1.3 sample key and the accept value it must produce. */
    static final String SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
    static final String SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    /** One frame as read from the wire, unmasked; {@code rsv1} set on a frame a permessage-deflate peer compressed. */
    record Frame(int opcode, boolean fin, byte[] payload, boolean rsv1) {
        Frame(int opcode, boolean fin, byte[] payload) {
            this(opcode, fin, payload, false);
        }

        String text() {
            return new String(payload, StandardCharsets.UTF_8);
        }

        /** The close code of a close frame, or 1005 when it carries none. */
        int closeCode() {
            return payload.length >= 2 ? ((payload[0] & 0xFF) << 8) | (payload[1] & 0xFF) : 1005;
        }

        /** The reason of a close frame, empty when it carries none. */
        String closeReason() {
            return payload.length > 2 ? new String(payload, 2, payload.length - 2, StandardCharsets.UTF_8) : "";
        }

        @Override
        public String toString() {
            return "Frame[opcode=" + opcode + ", fin=" + fin + ", " + payload.length + " bytes]";
        }
    }

    private RawFrames() {
    }

    /** Fails unless {@code frame} is a close frame with this code and reason. */
    static void assertCloseFrame(Frame frame, int code, String reason) {
        assertThat(frame.opcode()).as("a close frame").isEqualTo(CLOSE);
        assertThat(frame.closeCode()).as("close code").isEqualTo(code);
        assertThat(frame.closeReason()).as("close reason").isEqualTo(reason);
    }

    /** {@code base64(sha1(key + GUID))}, RFC 6455 section 4.2.2. */
    static String accept(String key) {
        try {
            MessageDigest sha1 = MessageDigest.getInstance("SHA-1");
            byte[] digest = sha1.digest((key.trim() + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                    .getBytes(StandardCharsets.ISO_8859_1));
            return Base64.getEncoder().encodeToString(digest);
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }

    /** Encodes one final frame; {@code masked} for a client's frames. */
    static byte[] encode(int opcode, byte[] payload, boolean masked) {
        return encode(true, opcode, payload, masked);
    }

    /** Encodes one frame, final or not; {@code masked} for a client's frames. */
    static byte[] encode(boolean fin, int opcode, byte[] payload, boolean masked) {
        int length = payload.length;
        int header = 2 + (length < 126 ? 0 : length <= 0xFFFF ? 2 : 8) + (masked ? 4 : 0);
        byte[] frame = new byte[header + length];
        int i = 0;
        frame[i++] = (byte) ((fin ? 0x80 : 0) | opcode);
        int maskBit = masked ? 0x80 : 0;
        if (length < 126) {
            frame[i++] = (byte) (maskBit | length);
        } else if (length <= 0xFFFF) {
            frame[i++] = (byte) (maskBit | 126);
            frame[i++] = (byte) (length >>> 8);
            frame[i++] = (byte) length;
        } else {
            frame[i++] = (byte) (maskBit | 127);
            for (int shift = 56; shift >= 0; shift -= 8) {
                frame[i++] = (byte) ((long) length >>> shift);
            }
        }
        byte[] mask = new byte[4];
        if (masked) {
            ThreadLocalRandom.current().nextBytes(mask);
            System.arraycopy(mask, 0, frame, i, 4);
            i += 4;
        }
        for (int j = 0; j < length; j++) {
            frame[i + j] = (byte) (payload[j] ^ mask[j & 3]);
        }
        return frame;
    }

    /** {@code frame}, an encoded frame, with RSV1 set: compressed, for a permessage-deflate peer. */
    static byte[] rsv1(byte[] frame) {
        frame[0] |= 0x40;
        return frame;
    }

    static byte[] text(String text, boolean masked) {
        return encode(TEXT, text.getBytes(StandardCharsets.UTF_8), masked);
    }

    static byte[] close(int code, String reason, boolean masked) {
        byte[] reasonBytes = reason.getBytes(StandardCharsets.UTF_8);
        byte[] payload = new byte[2 + reasonBytes.length];
        payload[0] = (byte) (code >>> 8);
        payload[1] = (byte) code;
        System.arraycopy(reasonBytes, 0, payload, 2, reasonBytes.length);
        return encode(CLOSE, payload, masked);
    }

    static void write(OutputStream out, byte[] frame) throws IOException {
        out.write(frame);
        out.flush();
    }

    /** Reads one frame, unmasking it if it is masked; throws {@link java.io.EOFException} at the end of the stream. */
    static Frame read(InputStream in) throws IOException {
        DataInputStream data = new DataInputStream(in);
        int b0 = data.readUnsignedByte();
        int b1 = data.readUnsignedByte();
        long length = b1 & 0x7F;
        if (length == 126) {
            length = data.readUnsignedShort();
        } else if (length == 127) {
            length = data.readLong();
        }
        if (length > 16 * 1024 * 1024) {
            throw new IOException("frame too large for a test: " + length);
        }
        byte[] mask = new byte[4];
        boolean masked = (b1 & 0x80) != 0;
        if (masked) {
            data.readFully(mask);
        }
        byte[] payload = new byte[(int) length];
        data.readFully(payload);
        if (masked) {
            for (int j = 0; j < payload.length; j++) {
                payload[j] ^= mask[j & 3];
            }
        }
        return new Frame(b0 & 0x0F, (b0 & 0x80) != 0, payload, (b0 & 0x40) != 0);
    }

    /** The bytes given as ints (0-255), for frames and payloads written byte by byte. */
    static byte[] bytes(int... values) {
        byte[] result = new byte[values.length];
        for (int i = 0; i < values.length; i++) {
            result[i] = (byte) values[i];
        }
        return result;
    }

    /** The parts one after the other, as one write. */
    static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        for (byte[] part : parts) {
            all.writeBytes(part);
        }
        return all.toByteArray();
    }
}
