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
    /// clockwise turn first when <paramref name="rotated"/>.
    /// </summary>
    public static (float X, float Y) ToOriginal(float x, float y, int inputWidth, int inputHeight, int frameWidth, int frameHeight, bool rotated)
    {
        var (u, v, width, height) = rotated ? (y, inputWidth - 1 - x, inputHeight, inputWidth) : (x, y, inputWidth, inputHeight);
        // Model pixel u covers original pixels around (u + 0.5) · scale − 0.5 (half-pixel centres, as the resize).
        return ((u + 0.5f) * frameWidth / width - 0.5f, (v + 0.5f) * frameHeight / height - 0.5f);
    }
}
