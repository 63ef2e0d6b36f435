package dev.wsproxy.internal;

import java.nio.ByteBuffer;

/**
 * Checks that the payload of a text message is well-formed UTF-8 (RFC 3629, Unicode table 3-7), fed frame by frame,
 * so a sequence may be split across frames. Rejects overlong forms, surrogates and code points above U+10FFFF as
 * soon as their first impossible byte arrives (RFC 6455 section 8.1: fail fast).
 *
 * <p>Not thread-safe: one instance per direction, fed by one frame at a time.
 */
final class Utf8Validator {

    /** Continuation bytes still expected by the current sequence. */
    private int remaining;
    /** Bounds of the next continuation byte; narrower than 0x80..0xBF only for the second byte of some sequences. */
    private int lower = 0x80;
    private int upper = 0xBF;
    private boolean failed;

    void reset() {
        remaining = 0;
        lower = 0x80;
        upper = 0xBF;
        failed = false;
    }

    /**
     * Feeds the remaining bytes of {@code payload} without moving its position.
     *
     * @return {@code false} once the bytes seen so far cannot start valid UTF-8
     */
    boolean feed(ByteBuffer payload) {
        if (failed) {
            return false;
        }
        int end = payload.limit();
        for (int i = payload.position(); i < end; i++) {
            byte b = payload.get(i);
            if (remaining == 0 && b >= 0) {
                continue;
            }
            if (!accept(b & 0xFF)) {
                failed = true;
                return false;
            }
        }
        return true;
    }

    /** Tells whether the message may end here: no sequence is cut off. */
    boolean isComplete() {
        return !failed && remaining == 0;
    }

    private boolean accept(int b) {
        if (remaining > 0) {
            if (b < lower || b > upper) {
                return false;
            }
            remaining--;
            lower = 0x80;
            upper = 0xBF;
            return true;
        }
        if (b >= 0xC2 && b <= 0xDF) {
            remaining = 1;
        } else if (b == 0xE0) {
            remaining = 2;
            lower = 0xA0; // no overlong 3-byte forms
        } else if (b == 0xED) {
            remaining = 2;
            upper = 0x9F; // no surrogates U+D800..U+DFFF
        } else if (b >= 0xE1 && b <= 0xEF) {
            remaining = 2;
        } else if (b == 0xF0) {
            remaining = 3;
            lower = 0x90; // no overlong 4-byte forms
        } else if (b >= 0xF1 && b <= 0xF3) {
            remaining = 3;
        } else if (b == 0xF4) {
            remaining = 3;
            upper = 0x8F; // nothing above U+10FFFF
        } else {
            return false; // 0x80..0xC1 (continuation or overlong 2-byte lead) and 0xF5..0xFF
        }
        return true;
    }
}
