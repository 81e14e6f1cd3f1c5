namespace Mobility.Fuzz;

/// <summary>What a target made of one input: a message (or a need for more bytes) or a refusal.</summary>
public enum FuzzOutcome
{
    /// <summary>Every message was read (or the parser asked for more bytes): no exception.</summary>
    Accepted,

    /// <summary>The parser refused the input with one of its documented exception types.</summary>
    Rejected,
}

/// <summary>Runs the parsers of one target over one input. Throws only when the input is refused or a rule is broken.</summary>
public delegate FuzzOutcome FuzzBody(ReadOnlySpan<byte> input);

/// <summary>An input of a target's seed corpus; names starting "valid-" are messages the parser must accept.</summary>
public sealed record FuzzSeed(string Name, byte[] Bytes)
{
    public bool MustBeAccepted => Name.StartsWith("valid-", StringComparison.Ordinal);
}

/// <summary>
/// One fuzz target: the parsers it drives, the exception types they document for malformed input
/// (anything else is a crash), and its seed corpus, built from the real encoders.
/// </summary>
public sealed class FuzzTarget
{
    public FuzzTarget(string name, string parsers, IReadOnlyList<Type> rejections, FuzzBody body, Func<IEnumerable<FuzzSeed>> seeds)
    {
        Name = name;
        Parsers = parsers;
        Rejections = rejections;
        Body = body;
        Seeds = seeds;
    }

    /// <summary>The name on the command line and the folder under fuzz/corpus and fuzz/regressions.</summary>
    public string Name { get; }

    /// <summary>The parser methods this target drives (for `Mobility.Fuzz list` and docs/fuzzing.md).</summary>
    public string Parsers { get; }

    /// <summary>The exact exception types that mean "malformed" (subclasses do not count).</summary>
    public IReadOnlyList<Type> Rejections { get; }

    public FuzzBody Body { get; }

    public Func<IEnumerable<FuzzSeed>> Seeds { get; }

    /// <summary>True when <paramref name="exception"/> is one of the documented rejections.</summary>
    public bool IsRejection(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        foreach (var type in Rejections)
        {
            if (exception.GetType() == type)
            {
                return true;
            }
        }

        return false;
    }
}

/// <summary>
/// A rule of the harness was broken: an undocumented exception, a "need more bytes" answer that
/// consumed bytes, a parse that depends on how the bytes were split, a re-encoding that differs,
/// or an allocation out of proportion to the input. Under afl-fuzz it is a crash.
/// </summary>
public sealed class FuzzFailureException : Exception
{
    public FuzzFailureException(string message) : base(message) { }

    public FuzzFailureException() : base("Fuzz rule broken.") { }

    public FuzzFailureException(string message, Exception innerException) : base(message, innerException) { }
}
