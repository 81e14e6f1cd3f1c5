namespace Mobility.Cli;

/// <summary>
/// Exit status of <c>mob</c>. Scripts may rely on these; they are printed by <c>mob --help</c>.
/// </summary>
public static class ExitCodes
{
    public const int Success = 0;

    /// <summary>Any failure without a more specific code (including GNS errors such as rate limiting or an internal error).</summary>
    public const int Failure = 1;

    /// <summary>The GUID, name or address has no record.</summary>
    public const int NotFound = 2;

    /// <summary>The GNS refused: bad signature, stale version, name taken, invalid record (also an unverifiable reply).</summary>
    public const int Rejected = 3;

    /// <summary>The GNS could not be reached (after all retries and the gRPC fallback).</summary>
    public const int Unreachable = 4;

    /// <summary>A key file is missing, unreadable, not a key, too open (group/other access), or would be overwritten.</summary>
    public const int KeyFile = 5;

    /// <summary>Interrupted (Ctrl-C) during a command that is not meant to run until interrupted.</summary>
    public const int Interrupted = 130;

    /// <summary>Bad command line (sysexits EX_USAGE).</summary>
    public const int Usage = 64;

    internal const string Help = """
        Exit status:
          0    success
          1    other failure (for example the GNS is rate limiting or failed internally)
          2    not found (no record for the GUID, name or address)
          3    rejected by the GNS (bad signature, stale version, name taken, invalid record)
          4    GNS unreachable (after retries and the gRPC fallback)
          5    key file problem (missing, not a key, readable by group/others, exists without --force)
          64   bad usage (unknown command or option, missing or malformed value)
          130  interrupted
        Errors are reported as one line on stderr, starting with "mob: "; with --json, as one
        JSON object on stderr: {"error":"<reason>","exit_code":<status>}.

        Environment:
          MOB_GNS           default for --gns (IP:PORT of the GNS datagram endpoint; else 127.0.0.1:7353)
          MOB_GNS_GRPC      default for --grpc (else none; gns watch: http://<gns-ip>:7381)
          MOBILITYD_SOCKET  default for --socket (else /run/mobility/mobilityd.sock, else
                            $XDG_RUNTIME_DIR/mobilityd.sock when only that one exists)
          XDG_RUNTIME_DIR   where a user's own mobilityd socket is looked for
          MOBILITYD_SOCKS   default for --socks (IP:PORT of mobilityd's SOCKS5 endpoint; else 127.0.0.1:1080)
          TMPDIR            where mob demo keeps its GNS database and the hosts' state while it runs
        """;
}

/// <summary>A command failed in a way the user must hear about: a one-line message and an exit code.</summary>
public sealed class CliException : Exception
{
    public CliException(int exitCode, string message) : base(message) => ExitCode = exitCode;

    public CliException(int exitCode, string message, Exception innerException) : base(message, innerException) => ExitCode = exitCode;

    public CliException() : this(ExitCodes.Failure, "Command failed.")
    {
    }

    public CliException(string message) : this(ExitCodes.Failure, message)
    {
    }

    public CliException(string message, Exception innerException) : this(ExitCodes.Failure, message, innerException)
    {
    }

    public int ExitCode { get; }
}
