using System.Net;

namespace Mobility.Daemon.Client;

/// <summary>What went wrong with a call of mobilityd's API.</summary>
public enum DaemonApiFailure
{
    /// <summary>Nothing listens on the socket (or it cannot be opened).</summary>
    Unreachable,

    /// <summary>The daemon did not answer within the client's timeout.</summary>
    Timeout,

    /// <summary>The daemon answered with an error status; <see cref="DaemonApiException.StatusCode"/> says which.</summary>
    Refused,

    /// <summary>The answer is not JSON (something other than mobilityd is on the socket).</summary>
    NotJson,
}

/// <summary>A call of mobilityd's API failed; the message names the socket and, for an error status, carries the daemon's message.</summary>
public sealed class DaemonApiException : IOException
{
    public DaemonApiException(DaemonApiFailure failure, HttpStatusCode? statusCode, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Failure = failure;
        StatusCode = statusCode;
    }

    public DaemonApiException()
    {
    }

    public DaemonApiException(string message) : base(message)
    {
    }

    public DaemonApiException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public DaemonApiFailure Failure { get; }

    /// <summary>The HTTP status of a <see cref="DaemonApiFailure.Refused"/> or <see cref="DaemonApiFailure.NotJson"/> answer.</summary>
    public HttpStatusCode? StatusCode { get; }
}
