namespace VideoMatch.Engine.Frames;

/// <summary>How a frame's original pixels relate to the model input it was resized (and perhaps rotated) into.</summary>
public static class FrameGeometry
{
    /// <summary>
    /// True when a frame is turned 90° clockwise to fit a model that rotates to fit: its orientation (landscape or
    /// portrait) differs from the input's. Square frames and square inputs are never turned.
    /// </summary>
    public static bool IsRotated(int inputWidth, int inputHeight, int frameWidth, int frameHeight) =>
        inputWidth != inputHeight && frameWidth != frameHeight && (inputWidth > inputHeight) != (frameWidth > frameHeight);

    /// <summary>
    /// Maps a point of the model input (pixel centres at whole numbers) to the frame's original pixels, undoing the
    /// clockwise turn first when <paramref name="rotated"/>; the frame fills the whole input (stretched).
    /// </summary>
    public static (float X, float Y) ToOriginal(float x, float y, int inputWidth, int inputHeight, int frameWidth, int frameHeight, bool rotated) =>
        FrameMapping.Create(inputWidth, inputHeight, frameWidth, frameHeight, rotated, letterbox: false).ToOriginal(x, y);
}

/// <summary>
/// Where one prepared frame sits in the model input: turned 90° clockwise or not, and which part of the input its
/// pixels fill (all of it when stretched, as the Hugging Face processor does; a top-left rectangle of the frame's
/// aspect ratio when letterboxed, the rest repeating the content's edge pixels). The one place that maps model
/// points back to a frame's pixels: model pixel u covers original pixels around (u + 0.5) · scale − 0.5
/// (half-pixel centres, as the resize).
/// </summary>
/// <param name="ContentWidth">Width of the frame's pixels in the input, measured before the turn.</param>
/// <param name="ContentHeight">Height of the frame's pixels in the input, measured before the turn.</param>
public readonly record struct FrameMapping(int InputWidth, int InputHeight, int OriginalWidth, int OriginalHeight, int ContentWidth, int ContentHeight, bool Rotated)
{
    /// <summary>The mapping of a <paramref name="frameWidth"/>×<paramref name="frameHeight"/> frame into the input.</summary>
    public static FrameMapping Create(int inputWidth, int inputHeight, int frameWidth, int frameHeight, bool rotated, bool letterbox)
    {
        // The input as the frame sees it: turned frames are resized to the input's turned size first.
        var (width, height) = rotated ? (inputHeight, inputWidth) : (inputWidth, inputHeight);
        if (letterbox)
        {
            var scale = Math.Min((double)width / frameWidth, (double)height / frameHeight);
            (width, height) = (Math.Clamp((int)Math.Round(frameWidth * scale), 1, width), Math.Clamp((int)Math.Round(frameHeight * scale), 1, height));
        }

        return new FrameMapping(inputWidth, inputHeight, frameWidth, frameHeight, width, height, rotated);
    }

    /// <summary>True when the frame leaves part of the input unfilled.</summary>
    public bool Letterboxed => Rotated ? (ContentWidth, ContentHeight) != (InputHeight, InputWidth) : (ContentWidth, ContentHeight) != (InputWidth, InputHeight);

    /// <summary>Maps an input point (pixel centres at whole numbers) to the frame's original pixels.</summary>
    public (float X, float Y) ToOriginal(float x, float y)
    {
        var (u, v) = ToContent(x, y);
        return ((u + 0.5f) * OriginalWidth / ContentWidth - 0.5f, (v + 0.5f) * OriginalHeight / ContentHeight - 0.5f);
    }

    /// <summary>True when an input point lies on the frame's own pixels, not on letterbox padding.</summary>
    public bool Covers(float x, float y)
    {
        var (u, v) = ToContent(x, y);
        return u >= -0.5f && v >= -0.5f && u <= ContentWidth - 0.5f && v <= ContentHeight - 0.5f;
    }

    /// <summary>Input (x, y) shows the turned frame's (y, inputWidth − 1 − x).</summary>
    private (float U, float V) ToContent(float x, float y) => Rotated ? (y, InputWidth - 1 - x) : (x, y);
}
