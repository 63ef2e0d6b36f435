package dev.wsproxy.examples.standalone;

/**
 * A command line the launcher cannot run: an unknown flag, a missing or malformed value. The message is one line that
 * names the flag, the value and the expected form, like {@code --listen: 'localhost' (expected: HOST:PORT, ...)}.
 */
final class UsageException extends Exception {

    private static final long serialVersionUID = 1L;

    UsageException(String message) {
        super(message);
    }

    static UsageException badValue(String flag, String value, String expected) {
        return new UsageException(flag + ": '" + value + "' (expected: " + expected + ")");
    }
}
