using Mobility.Protocol.Gns;

namespace Mobility.Gns.Service;

/// <summary>The outcome of a GNS operation: a value, or the error code a transport turns into its own reply.</summary>
public readonly struct GnsResult<T>
{
    private GnsResult(T value, GnsErrorCode? error, string? message)
    {
        Value = value;
        Error = error;
        Message = message;
    }

    public T Value { get; }

    /// <summary>Null on success.</summary>
    public GnsErrorCode? Error { get; }

    /// <summary>Why the operation failed, for the peer (never holds secrets or internal detail).</summary>
    public string? Message { get; }

    public bool IsSuccess => Error is null;

    public static GnsResult<T> Success(T value) => new(value, null, null);

    public static GnsResult<T> Failure(GnsErrorCode error, string message) => new(default!, error, message);

    public override string ToString() => IsSuccess ? $"ok {Value}" : $"{Error}: {Message}";
}
