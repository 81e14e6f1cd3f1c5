namespace Mobility.Cli.Demo;

/// <summary>What kind of failure ended a demo before its report (mob maps each to an exit code).</summary>
public enum DemoFailure
{
    /// <summary>Setting up or connecting failed.</summary>
    Failure,

    /// <summary>A host could not reach the embedded GNS.</summary>
    Unreachable,

    /// <summary>The embedded GNS does not know a host.</summary>
    NotFound,
}

/// <summary>The demo could not run to its report; the message is one line for the user.</summary>
public sealed class DemoException : Exception
{
    public DemoException(DemoFailure failure, string message, Exception? innerException = null) : base(message, innerException)
        => Failure = failure;

    public DemoException()
    {
    }

    public DemoException(string message) : base(message)
    {
    }

    public DemoException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public DemoFailure Failure { get; }
}
