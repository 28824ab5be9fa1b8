namespace VideoMatch.Engine.Frames;

/// <summary>A frame the server cannot use; the message is shown to the client as it is.</summary>
public sealed class FrameRejectedException(string message) : Exception(message);
